// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause

// idle is the Go peer of bench/kassist/idle.c: CPU used by an idle process
// with 10,000 goroutines parked on a channel nobody sends on and main
// asleep.  After 500 ms of settling it reads utime+stime from
// /proc/self/stat, sleeps SECS seconds (default 10), reads them again and
// prints the CPU used as a percentage of one CPU, then the same from
// getrusage: "PROC_PCT RU_PCT", as the C side.
//
// Usage: idle [SECS] [GOROUTINES]
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const clockTicks = 100 // USER_HZ on Linux

func intArg(i, def int) int {
	if len(os.Args) <= i {
		return def
	}
	n, err := strconv.Atoi(os.Args[i])
	if err != nil || n <= 0 {
		fmt.Fprintf(os.Stderr, "idle: bad argument %q\n", os.Args[i])
		os.Exit(2)
	}
	return n
}

// cpuTicks is utime+stime of this process (fields 14 and 15 of its stat).
func cpuTicks() int64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		fmt.Fprintln(os.Stderr, "idle:", err)
		os.Exit(1)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st
}

// rusageSecs is user+system CPU time from getrusage, in seconds.
func rusageSecs() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func main() {
	secs, n := intArg(1, 10), intArg(2, 10000)
	never := make(chan struct{})
	var started sync.WaitGroup
	started.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-never
		}()
	}
	started.Wait()
	time.Sleep(500 * time.Millisecond)
	t0, r0, w0 := cpuTicks(), rusageSecs(), time.Now()
	time.Sleep(time.Duration(secs) * time.Second)
	t1, r1, wall := cpuTicks(), rusageSecs(), time.Since(w0)
	fmt.Fprintf(os.Stderr, "idle (go): %d parked, %.2f s: %d ticks, %.4f s by getrusage\n",
		n, wall.Seconds(), t1-t0, r1-r0)
	fmt.Printf("%.3f %.4f\n", float64(t1-t0)/clockTicks/wall.Seconds()*100,
		(r1-r0)/wall.Seconds()*100)
}
