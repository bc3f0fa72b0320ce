// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
// The Go peers of the kernel-assist benchmarks (bench/kassist/run.sh):
// standard library only, built offline with Debian's golang-go.
module gmprt/bench/kassist

go 1.19
