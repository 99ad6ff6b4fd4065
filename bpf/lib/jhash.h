/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Bob Jenkins' lookup3 mixing, as the kernel's jhash uses it: the Maglev
 * flow hash. daemon/maglev computes nothing with it; only BPF hashes
 * packets, so every node picks the same backend for a flow. */
#pragma once

#include "common.h"

#define JHASH_INITVAL	0xdeadbeef

static __always_inline __u32 rol32(__u32 w, unsigned int s)
{
	return (w << s) | (w >> (32 - s));
}

#define __jhash_mix(a, b, c)			\
{						\
	a -= c;  a ^= rol32(c, 4);  c += b;	\
	b -= a;  b ^= rol32(a, 6);  a += c;	\
	c -= b;  c ^= rol32(b, 8);  b += a;	\
	a -= c;  a ^= rol32(c, 16); c += b;	\
	b -= a;  b ^= rol32(a, 19); a += c;	\
	c -= b;  c ^= rol32(b, 4);  b += a;	\
}

#define __jhash_final(a, b, c)			\
{						\
	c ^= b; c -= rol32(b, 14);		\
	a ^= c; a -= rol32(c, 11);		\
	b ^= a; b -= rol32(a, 25);		\
	c ^= b; c -= rol32(b, 16);		\
	a ^= c; a -= rol32(c, 4);		\
	b ^= a; b -= rol32(a, 14);		\
	c ^= b; c -= rol32(b, 24);		\
}

/* jhash_6words hashes six 32-bit words. */
static __always_inline __u32 jhash_6words(__u32 w0, __u32 w1, __u32 w2, __u32 w3, __u32 w4, __u32 w5)
{
	__u32 a, b, c;

	a = b = c = JHASH_INITVAL + (6 << 2);
	a += w0;
	b += w1;
	c += w2;
	__jhash_mix(a, b, c);
	a += w3;
	b += w4;
	c += w5;
	__jhash_final(a, b, c);
	return c;
}
