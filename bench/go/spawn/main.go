// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause

// Command spawn is the Go peer of bench/spawn.c: it measures how long it
// takes to start and finish N goroutines (default 1,000,000) that each do
// nothing but wg.Done(). The clock runs from the first `go` statement until
// wg.Wait() returns in main; it prints nanoseconds per goroutine on stdout.
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

func main() {
	n := 1000000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	var wg sync.WaitGroup
	wg.Add(n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	el := time.Since(t0)
	fmt.Printf("%.1f\n", float64(el.Nanoseconds())/float64(n))
}
