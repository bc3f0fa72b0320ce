// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
// The Go peers of gmprt's benchmarks: standard library only, built offline
// by bench/run.sh with Debian's golang-go.
module gmprt/bench

go 1.19
