/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Shared definitions for every hivelet BPF program. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET		2
#define AF_INET6	10

#define ENOENT		2
#define ENOMEM		12
#define EHOSTUNREACH	113
#define ECONNREFUSED	111

/* Return codes of cgroup sock_addr programs. */
#define SYS_REJECT	0
#define SYS_PROCEED	1

union v6addr {
	__u8 addr[16];
	__be32 p[4];
};

static __always_inline bool v6addr_is_v4mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}
