/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Shared definitions for every hivelet BPF program. */
#pragma once

/* Every kernel type the programs touch is UAPI (the bpf_sock_addr and
 * __sk_buff contexts) or a wire format (Ethernet, IP, TCP, UDP, ICMP
 * headers): their layouts never move, so CO-RE relocations buy nothing.
 * They cost a lot at load time: with any relocation present, cilium/ebpf
 * parses the kernel's whole BTF for every program it loads (~20 ms each,
 * most of the agent's start) and keeps it in memory. */
#define BPF_NO_PRESERVE_ACCESS_INDEX
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
