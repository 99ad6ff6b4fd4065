/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Maps of the per-packet datapath (host.c, pod.c): connection tracking,
 * SNAT, Maglev tables, source ranges, external affinity, node config and
 * drop counters. Every struct has a Go twin checked against the BTF. */
#pragma once

/* Included at the end of maps.h, never on its own. */

/* Direction of a tuple as the program that looks it up sees it. */
enum ct_dir {
	CT_INGRESS = 0,	/* arriving on a node device */
	CT_EGRESS = 1,	/* leaving through a node device */
	CT_POD_OUT = 2,	/* leaving a pod (its veth's host-side ingress) */
	CT_POD_IN = 3,	/* entering a pod (its veth's host-side egress) */
};

/* ct_key is a packet's 5-tuple as seen on the wire by the looking-up
 * program. IPv4 addresses are stored v4-mapped so that one map serves
 * both families. */
struct ct_key {
	union v6addr saddr;
	union v6addr daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 dir;	/* enum ct_dir */
	__u8 pad[2];
};

enum ct_flags {
	CT_F_SNAT	= 1 << 0,	/* forward entry that also rewrites the source */
	CT_F_CLOSING	= 1 << 1,	/* FIN or RST seen */
	CT_F_SEEN_ACK	= 1 << 2,	/* handshake got past SYN */
	CT_F_REPLY	= 1 << 3,	/* reverse-translation entry */
	CT_F_POD	= 1 << 4,	/* written by pod.c */
	CT_F_HAIRPIN	= 1 << 5,	/* a pod reaching itself: sent back into its veth */
};

/* ct_entry says what a matching packet's tuple becomes. */
struct ct_entry {
	union v6addr saddr;
	union v6addr daddr;
	__be16 sport;
	__be16 dport;
	__u32 backend_id;
	__u32 rev_nat_index;
	__u32 expires;		/* seconds of bpf_ktime_get_ns() */
	__u8 flags;		/* enum ct_flags */
	__u8 pad[3];
};

#ifndef CT_MAP_MAX
#define CT_MAP_MAX	262144
#endif
#ifndef NAT_MAP_MAX
#define NAT_MAP_MAX	262144
#endif

/* Forward entries (client → frontend) and reverse entries of flows whose
 * backend is local (backend → client, on egress). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
	__uint(max_entries, CT_MAP_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hl_ct SEC(".maps");

/* SNAT: replies of flows sent to a backend on another node, keyed by the
 * tuple they come back with (backend → node address:allocated port).
 * Inserting with BPF_NOEXIST is the port allocation. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
	__uint(max_entries, NAT_MAP_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hl_nat SEC(".maps");

/* Maglev lookup tables by rev-NAT id: an array of backend ids of the
 * configured prime size (inner maps are created by the agent). */
#ifndef MAGLEV_MAP_MAX
#define MAGLEV_MAP_MAX	65536
#endif
#ifndef MAGLEV_INNER_TEMPLATE_SIZE
#define MAGLEV_INNER_TEMPLATE_SIZE	16381
#endif

struct maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, MAGLEV_INNER_TEMPLATE_SIZE);
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__type(key, __u32);
	__uint(max_entries, MAGLEV_MAP_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct maglev_inner);
} hl_lb_maglev SEC(".maps");

/* loadBalancerSourceRanges: an entry per (rev-NAT id, allowed prefix). The
 * prefix length counts the 32 bits of the id, then address bits (IPv4
 * v4-mapped: 96 + prefix). */
struct lb_srcrange_key {
	__u32 prefixlen;
	__u32 rev_nat_id;
	union v6addr addr;
};

#ifndef SRCRANGE_MAP_MAX
#define SRCRANGE_MAP_MAX	16384
#endif

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lb_srcrange_key);
	__type(value, __u8);
	__uint(max_entries, SRCRANGE_MAP_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hl_lb_srcr SEC(".maps");

/* Session affinity of external clients, by client address. */
struct lb_affinity_ext_key {
	union v6addr client;
	__u32 rev_nat_id;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_affinity_ext_key);
	__type(value, struct lb_affinity_val);
	__uint(max_entries, LB_AFFINITY_MAP_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hl_lb_affx SEC(".maps");

/* host_config is written by the agent: the addresses replies to SNATed
 * flows come back to, the SNAT port range and the Maglev table size. */
struct host_config {
	union v6addr snat4;	/* v4-mapped; zero: no IPv4 SNAT */
	union v6addr snat6;	/* zero: no IPv6 SNAT */
	__u32 maglev_size;
	__u16 nat_port_min;
	__u16 nat_port_max;
	/* Non-zero: socket LB serves only this network namespace (the
	 * host's); pods are served per packet by pod.c. */
	__u64 sock_host_netns;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct host_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hl_host_cfg SEC(".maps");

/* Per-CPU packet counters, indexed by enum hl_stat. */
enum hl_stat {
	STAT_XLATE_NEW = 0,	/* new flow to a service translated */
	STAT_XLATE_EST,		/* packet of a tracked flow translated */
	STAT_XLATE_ICMP,	/* ICMP error of a tracked flow translated */
	STAT_DROP_NO_BACKEND,	/* service without usable backend */
	STAT_DROP_SRC_RANGE,	/* client outside loadBalancerSourceRanges */
	STAT_DROP_FRAG,		/* fragmented packet to a service */
	STAT_DROP_CT_FULL,	/* CT insertion failed */
	STAT_DROP_NAT_PORTS,	/* no free SNAT port */
	STAT_DROP_FIB,		/* no route to the backend or client */
	STAT_MALFORMED,		/* truncated or invalid headers, passed on */
	STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, STAT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hl_stats SEC(".maps");

static __always_inline void stat_inc(enum hl_stat s)
{
	__u32 key = s;
	__u64 *v = bpf_map_lookup_elem(&hl_stats, &key);

	if (v)
		*v += 1;
}

/* Never called: keeps the host enums in the BTF for datapath/btf_test.go. */
__noinline int hl_host_abi_enums(enum ct_dir d, enum ct_flags f, enum hl_stat s)
{
	return d + f + s;
}
