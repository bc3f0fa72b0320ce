// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause

// Command pingpong is the Go peer of bench/pingpong.c: a driver sends an
// int on an unbuffered channel, a player receives it and sends it back on a
// second unbuffered channel, N times (default 1,000,000) after 10,000
// warm-up round trips. Mode "go" (the default) runs the driver in a spawned
// goroutine, mode "main" runs it in main itself. Only the driver's timed
// loop is on the clock; it prints nanoseconds per round trip on stdout.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

const warmup = 10000

func player(ping <-chan int, pong chan<- int, n int) {
	for i := 0; i < n; i++ {
		pong <- <-ping + 1
	}
}

func driver(ping chan<- int, pong <-chan int, n int) time.Duration {
	for i := 0; i < warmup; i++ {
		ping <- i
		<-pong
	}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		ping <- i
		if <-pong != i+1 {
			panic("pingpong: wrong value")
		}
	}
	return time.Since(t0)
}

func main() {
	mode := "go"
	n := 1000000
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	if len(os.Args) > 2 {
		n, _ = strconv.Atoi(os.Args[2])
	}
	ping, pong := make(chan int), make(chan int)
	go player(ping, pong, warmup+n)
	var el time.Duration
	switch mode {
	case "main":
		el = driver(ping, pong, n)
	case "go":
		done := make(chan time.Duration)
		go func() { done <- driver(ping, pong, n) }()
		el = <-done
	default:
		fmt.Fprintln(os.Stderr, "usage: pingpong [go|main] [N]")
		os.Exit(2)
	}
	fmt.Printf("%.1f\n", float64(el.Nanoseconds())/float64(n))
}
