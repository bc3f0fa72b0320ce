// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause

// handoff is the Go peer of bench/kassist/handoff.c: hand-off latency when
// the goroutine holding the only P (GOMAXPROCS=1) blocks in syscall.Read on
// an empty pipe while another goroutine is runnable.  Each trial, main sends
// on a buffered channel that the other goroutine waits on, stamps the clock
// and reads; the other goroutine runs once Go's sysmon retakes the P from
// the syscall, stamps the clock and writes the byte that releases main.
//
// Usage: handoff [TRIALS] (default 2000, after 100 warm-up trials).
// Prints "p50 p99 max" in ns, the same percentiles as the C side.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

const warmup = 100

func trialsArg() int {
	if len(os.Args) < 2 {
		return 2000
	}
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n <= 0 {
		fmt.Fprintf(os.Stderr, "handoff: bad argument %q\n", os.Args[1])
		os.Exit(2)
	}
	return n
}

func must(err error, what string) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "handoff: %s: %v\n", what, err)
		os.Exit(1)
	}
}

func main() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	trials := trialsArg()
	var fds [2]int
	must(syscall.Pipe(fds[:]), "pipe")
	base := time.Now()
	now := func() int64 { return int64(time.Since(base)) }
	var tRead int64
	samples := make([]int64, trials+warmup)
	wake := make(chan int, 1)
	done := make(chan struct{})

	go func() {
		b := []byte{'x'}
		for i := range samples {
			<-wake
			samples[i] = now() - atomic.LoadInt64(&tRead)
			_, err := syscall.Write(fds[1], b)
			must(err, "write")
		}
		close(done)
	}()

	buf := make([]byte, 1)
	for i := range samples {
		wake <- i
		atomic.StoreInt64(&tRead, now())
		for {
			_, err := syscall.Read(fds[0], buf)
			if err != syscall.EINTR {
				must(err, "read")
				break
			}
		}
	}
	<-done

	v := samples[warmup:]
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	n := len(v)
	fmt.Fprintf(os.Stderr, "handoff (go): %d trials, GOMAXPROCS=%d\n", n, runtime.GOMAXPROCS(0))
	fmt.Println(v[(n-1)*50/100], v[(n-1)*99/100], v[n-1])
}
