// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause

// Command skynet is the Go peer of bench/skynet.c: a tree of goroutines
// with fan-out 10 and 1,000,000 leaves (1,111,111 goroutines in all). Each
// leaf sends its own index on its parent's unbuffered channel; each inner
// node makes one channel, starts its 10 children on it, adds up the 10
// values it receives and sends the sum to its own parent. The clock runs
// from starting the root until main receives the total (which must be
// 499999500000); it prints seconds on stdout.
package main

import (
	"fmt"
	"os"
	"time"
)

const fanout = 10

func node(up chan<- int64, first, count int64) {
	if count == 1 {
		up <- first
		return
	}
	down := make(chan int64)
	step := count / fanout
	for i := int64(0); i < fanout; i++ {
		go node(down, first+i*step, step)
	}
	var sum int64
	for i := 0; i < fanout; i++ {
		sum += <-down
	}
	up <- sum
}

func main() {
	const leaves = 1000000
	up := make(chan int64)
	t0 := time.Now()
	go node(up, 0, leaves)
	sum := <-up
	el := time.Since(t0)
	if sum != leaves*(leaves-1)/2 {
		fmt.Fprintf(os.Stderr, "skynet: wrong sum %d\n", sum)
		os.Exit(1)
	}
	fmt.Printf("%.3f\n", el.Seconds())
}
