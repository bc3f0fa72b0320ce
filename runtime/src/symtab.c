/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * symtab.c - names for code addresses, for the goroutine lists of fatal
 * errors and SIGQUIT dumps (Go prints each goroutine's function by name).
 *
 * dladdr names what the dynamic symbol table holds: exported functions of
 * shared objects, and of an executable linked with -rdynamic.  A goroutine's
 * function is more often a static function of the program, which only the
 * full symbol table (.symtab) names; unless the file was stripped, sym_name
 * finds it there: it maps the object file that dladdr says holds the
 * address, read-only, and looks for the STT_FUNC symbol that spans it.
 *
 * Invariants:
 *   - No heap: this runs in fatal paths, where the heap may be what broke.
 *     open, mmap, munmap and close only, and every offset read from the file
 *     is checked against its size first (a file that changed on disk, or is
 *     not ELF, gives no name, never a fault).
 *   - The executable is read through /proc/self/exe: dladdr reports it by
 *     argv[0], which may be relative to a directory the program has left.
 */
#define _GNU_SOURCE
#include "runtime.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>	/* program_invocation_name */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A read-only mapping of an object file. */
struct mapped_file {
	const unsigned char *base;
	size_t size;
};

static bool map_file(const char *path, struct mapped_file *f)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	struct stat st;
	void *p = MAP_FAILED;
	if (fstat(fd, &st) == 0 && st.st_size >= (off_t)sizeof(Elf64_Ehdr))
		p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return false;
	f->base = p;
	f->size = (size_t)st.st_size;
	return true;
}

/* [off, off + len) lies inside the file. */
static bool in_file(const struct mapped_file *f, uint64_t off, uint64_t len)
{
	return off <= f->size && len <= f->size - off;
}

/* The section header at index i, or NULL. */
static const Elf64_Shdr *section(const struct mapped_file *f, const Elf64_Ehdr *eh, uint32_t i)
{
	if (i >= eh->e_shnum || eh->e_shentsize != sizeof(Elf64_Shdr))
		return NULL;
	uint64_t off = eh->e_shoff + (uint64_t)i * sizeof(Elf64_Shdr);
	return in_file(f, off, sizeof(Elf64_Shdr)) ? (const Elf64_Shdr *)(f->base + off) : NULL;
}

/* Copies into name the function of symtab sh whose range holds vaddr. */
static bool search_symtab(const struct mapped_file *f, const Elf64_Shdr *sh, const Elf64_Shdr *strs,
			  uint64_t vaddr, char *name, size_t len)
{
	if (sh->sh_entsize != sizeof(Elf64_Sym) || !in_file(f, sh->sh_offset, sh->sh_size) ||
	    !in_file(f, strs->sh_offset, strs->sh_size))
		return false;
	const Elf64_Sym *sym = (const Elf64_Sym *)(f->base + sh->sh_offset);
	size_t n = sh->sh_size / sizeof(Elf64_Sym);
	for (size_t i = 0; i < n; i++) {
		if (ELF64_ST_TYPE(sym[i].st_info) != STT_FUNC || sym[i].st_shndx == SHN_UNDEF ||
		    vaddr < sym[i].st_value || vaddr - sym[i].st_value >= (sym[i].st_size ? sym[i].st_size : 1))
			continue;
		if (sym[i].st_name >= strs->sh_size)
			return false;
		const char *s = (const char *)f->base + strs->sh_offset + sym[i].st_name;
		size_t max = strs->sh_size - sym[i].st_name;
		size_t l = strnlen(s, max);
		if (l == max || l == 0)
			return false;
		snprintf(name, len, "%.*s", (int)l, s);
		return true;
	}
	return false;
}

/* The .symtab lookup of vaddr (an address as the file's symbols count it). */
static bool file_sym(const char *path, uint64_t vaddr, char *name, size_t len)
{
	struct mapped_file f;
	if (!map_file(path, &f))
		return false;
	bool found = false;
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f.base;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64) {
		for (uint32_t i = 0; i < eh->e_shnum && !found; i++) {
			const Elf64_Shdr *sh = section(&f, eh, i);
			if (!sh)
				break;
			const Elf64_Shdr *strs = sh->sh_type == SHT_SYMTAB ? section(&f, eh, sh->sh_link) : NULL;
			found = strs && search_symtab(&f, sh, strs, vaddr, name, len);
		}
	}
	munmap((void *)f.base, f.size);
	return found;
}

bool sym_name(const void *addr, char *name, size_t len)
{
	Dl_info info;
	if (!len || !dladdr(addr, &info))
		return false;
	if (info.dli_sname && info.dli_saddr == addr) {
		snprintf(name, len, "%s", info.dli_sname);
		return true;
	}
	if (!info.dli_fname)
		return false;
	bool exe = strcmp(info.dli_fname, program_invocation_name) == 0 || !info.dli_fname[0];
	const char *path = exe ? "/proc/self/exe" : info.dli_fname;
	/* Symbols of a position-independent file count from its load base. */
	const Elf64_Ehdr *loaded = info.dli_fbase;
	uint64_t vaddr = (uintptr_t)addr;
	if (loaded && loaded->e_type == ET_DYN)
		vaddr -= (uintptr_t)info.dli_fbase;
	return file_sym(path, vaddr, name, len);
}
