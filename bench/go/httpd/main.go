// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause

// Command httpd is the Go peer of examples/httpd.c for bench/run.sh: the
// seed article's net/http server, whose handler sleeps 100 ms and replies
// "Done" (HTTP/1.1 keep-alive is net/http's default). It listens on the
// address given as its argument (default 127.0.0.1:8081); run.sh drives it
// with wrk and reads its peak RSS from /proc/PID/status.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"time"
)

func handleRequest(w http.ResponseWriter, r *http.Request) {
	time.Sleep(100 * time.Millisecond)
	fmt.Fprintf(w, "Done")
}

func main() {
	addr := "127.0.0.1:8081"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	http.HandleFunc("/", handleRequest)
	log.Fatal(http.ListenAndServe(addr, nil))
}
