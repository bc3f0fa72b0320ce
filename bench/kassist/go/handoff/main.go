// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause

// handoff is the Go peer of bench/kassist/handoff.c: hand-off latency when
// the goroutine holding the only P (GOMAXPROCS=1) blocks in syscall.Read on
// an empty pipe while another goroutine is runnable.  Each trial, main sends
// on a buffered channel that the other goroutine waits on, stamps the clock
// and reads; the other goroutine runs once Go's sysmon retakes the P from
// the syscall, stamps the clock and writes the byte that releases main.
//
// Usage: handoff [TRIALS [GAP_US]] (default 2000 trials, after 100 warm-up
// trials; GAP_US, default 0, is a sleep of main before each trial, so that
// every block comes after the runtime has gone quiet).
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

func intArg(i, dflt, min int) int {
	if len(os.Args) <= i {
		return dflt
	}
	n, err := strconv.Atoi(os.Args[i])
	if err != nil || n < min {
		fmt.Fprintf(os.Stderr, "handoff: bad argument %q\n", os.Args[i])
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
	trials := intArg(1, 2000, 1)
	gap := time.Duration(intArg(2, 0, 0)) * time.Microsecond
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
		if gap > 0 {
			time.Sleep(gap)
		}
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
