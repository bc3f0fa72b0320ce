/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * warn_stub.c - warn() for the kassist selftest, which links kassist.o
 * without the rest of the runtime.  Same output as the runtime's warn() in
 * panic.c: one line, "gmprt: warning: <message>", on stderr.
 */
#include "runtime.h"

#include <stdarg.h>
#include <stdio.h>

void warn(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "gmprt: warning: %s\n", line);
}
