// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause

// Command fib is the Go peer of bench/fib.c: fork-join Fibonacci. pfib(n)
// runs pfib(n-1) in a new goroutine, computes pfib(n-2) itself and joins
// with a WaitGroup; at or below the cutoff it recurses serially. After a
// warm-up at P Ps it times pfib(N) with GOMAXPROCS(1) and then with
// GOMAXPROCS(P) (default 2) in the same process and prints the speed-up
// t(1)/t(P) on stdout (the two times go to stderr).
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

const (
	n      = 40
	cutoff = 18
)

func fib(k int) int64 {
	if k < 2 {
		return int64(k)
	}
	return fib(k-1) + fib(k-2)
}

func fibIter(k int) int64 {
	a, b := int64(0), int64(1)
	for ; k > 0; k-- {
		a, b = b, a+b
	}
	return a
}

func pfib(k int) int64 {
	if k <= cutoff {
		return fib(k)
	}
	var wg sync.WaitGroup
	var a int64
	wg.Add(1)
	go func() {
		a = pfib(k - 1)
		wg.Done()
	}()
	b := pfib(k - 2)
	wg.Wait()
	return a + b
}

func timed(procs, k int) float64 {
	runtime.GOMAXPROCS(procs)
	t0 := time.Now()
	r := pfib(k)
	el := time.Since(t0).Seconds()
	if r != fibIter(k) {
		panic("fib: wrong result")
	}
	return el
}

func main() {
	p := 2
	if len(os.Args) > 1 {
		p, _ = strconv.Atoi(os.Args[1])
	}
	timed(p, n-4)
	t1 := timed(1, n)
	tp := timed(p, n)
	fmt.Fprintf(os.Stderr, "fib(%d) cutoff %d: 1 P %.3f s, %d Ps %.3f s\n", n, cutoff, t1, p, tp)
	fmt.Printf("%.2f\n", t1/tp)
}
