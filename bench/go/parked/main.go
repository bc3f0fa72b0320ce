// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause

// Command parked is the Go peer of bench/parked.c: it reads VmRSS from
// /proc/self/status, starts N goroutines (default 1,000,000) that each mark
// a WaitGroup done and then block receiving from one shared channel that
// nobody sends on, waits until all of them are started (plus a 50 ms pause
// so the last ones are parked), and reads VmRSS again. It prints the RSS
// growth in bytes per parked goroutine on stdout, then exits with them all
// still parked.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func rssKiB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "VmRSS:") {
			fields := strings.Fields(line)
			v, _ := strconv.ParseInt(fields[1], 10, 64)
			return v
		}
	}
	panic("no VmRSS in /proc/self/status")
}

func main() {
	n := 1000000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	block := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(n)
	before := rssKiB()
	for i := 0; i < n; i++ {
		go func() {
			wg.Done()
			<-block
		}()
	}
	wg.Wait()
	time.Sleep(50 * time.Millisecond)
	after := rssKiB()
	fmt.Printf("%.0f\n", float64(after-before)*1024/float64(n))
}
