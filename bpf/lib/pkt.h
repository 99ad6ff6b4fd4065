/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet parsing and rewriting for the TC programs. Headers are copied out
 * with bpf_skb_load_bytes, so every offset is checked by the kernel and a
 * short or odd packet can only fail a load, never fault. */
#pragma once

#include "maps.h"

#define ETH_HLEN	14
#define ETH_ALEN	6
#define ETH_P_IP	0x0800
#define ETH_P_IPV6	0x86DD

#ifndef TC_ACT_OK
#define TC_ACT_OK	0
#define TC_ACT_SHOT	2
#define TC_ACT_REDIRECT	7
#endif

#define NEXTHDR_ICMPV6	58
#define IP_MF		0x2000
#define IP_OFFSET	0x1fff
#define ICMP_DEST_UNREACH	3
#define ICMP_TIME_EXCEEDED	11

#define TCP_FIN	0x01
#define TCP_SYN	0x02
#define TCP_RST	0x04
#define TCP_ACK	0x10

/* What pkt_parse found. */
enum pkt_kind {
	PKT_L4 = 0,	/* TCP or UDP: p->t is its tuple */
	PKT_ICMP_ERR,	/* ICMP error: p->t is the reversed tuple of the quoted packet */
	PKT_SKIP,	/* not for the LB (other protocols, later fragments) */
	PKT_MALFORMED,	/* headers truncated or invalid */
};

struct pkt {
	struct ct_key t;
	__u32 l4_off;
	__u32 inner_l3_off;	/* PKT_ICMP_ERR: the quoted IP header */
	__u32 inner_l4_off;
	__be32 outer_saddr;	/* PKT_ICMP_ERR, IPv4 */
	__be32 outer_daddr;
	union v6addr outer6_saddr;	/* PKT_ICMP_ERR, IPv6 */
	union v6addr outer6_daddr;
	__u8 family;
	__u8 tcp_flags;
	__u8 frag;		/* first fragment of a fragmented datagram */
	__u8 kind;		/* enum pkt_kind */
};

/* hdr_load copies len bytes at off: straight from the linear packet data
 * when they are there (the common case, no helper call), else through
 * bpf_skb_load_bytes, which also reaches paged data and fails cleanly on
 * a packet too short. */
static __always_inline int hdr_load(struct __sk_buff *skb, __u32 off, void *to, const __u32 len)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	if (off <= 256 && data + off + len <= end) {
		__builtin_memcpy(to, data + off, len);
		return 0;
	}
	return bpf_skb_load_bytes(skb, off, to, len);
}

/* hdr_store writes len bytes at off. Through the helper on purpose: a
 * program that writes packet data directly gets a prologue that unclones
 * every skb it sees (forwarded TCP segments are clones), translated or
 * not; the helper makes only the packets it rewrites private. */
static __always_inline int hdr_store(struct __sk_buff *skb, __u32 off, const void *from, const __u32 len)
{
	return bpf_skb_store_bytes(skb, off, from, len, 0);
}

static __always_inline void v6addr_set_v4(union v6addr *a, __be32 v4)
{
	a->p[0] = 0;
	a->p[1] = 0;
	a->p[2] = bpf_htonl(0x0000ffff);
	a->p[3] = v4;
}

static __always_inline bool v6addr_eq(const union v6addr *a, const union v6addr *b)
{
	return a->p[0] == b->p[0] && a->p[1] == b->p[1] && a->p[2] == b->p[2] && a->p[3] == b->p[3];
}

static __always_inline bool v6addr_zero(const union v6addr *a)
{
	return (a->p[0] | a->p[1] | a->p[2] | a->p[3]) == 0;
}

/* parse_ports reads the ports (and TCP flags) of the L4 header at off.
 * Returns false when the header is truncated or invalid. */
static __always_inline bool
parse_ports(struct __sk_buff *skb, __u32 off, __u8 proto, __be16 *sport, __be16 *dport, __u8 *tcp_flags)
{
	if (proto == IPPROTO_TCP) {
		struct tcphdr th;

		if (hdr_load(skb, off, &th, sizeof(th)) < 0 || th.doff < 5)
			return false;
		*sport = th.source;
		*dport = th.dest;
		*tcp_flags = ((__u8 *)&th)[13];
		return true;
	}
	if (proto == IPPROTO_UDP) {
		struct udphdr uh;

		if (hdr_load(skb, off, &uh, sizeof(uh)) < 0 || bpf_ntohs(uh.len) < sizeof(uh))
			return false;
		*sport = uh.source;
		*dport = uh.dest;
		return true;
	}
	return false;
}

/* parse_icmp4_err fills p->t with the reverse of the TCP/UDP packet an
 * ICMP error quotes, so it can be looked up like a packet of that flow
 * travelling the other way. */
static __always_inline int parse_icmp4_err(struct __sk_buff *skb, struct pkt *p)
{
	struct icmphdr ih;
	struct iphdr in;
	__be16 sport, dport;
	__u8 flags = 0;

	if (bpf_skb_load_bytes(skb, p->l4_off, &ih, sizeof(ih)) < 0)
		return PKT_MALFORMED;
	if (ih.type != ICMP_DEST_UNREACH && ih.type != ICMP_TIME_EXCEEDED)
		return PKT_SKIP;
	p->inner_l3_off = p->l4_off + sizeof(ih);
	if (bpf_skb_load_bytes(skb, p->inner_l3_off, &in, sizeof(in)) < 0 || in.version != 4 || in.ihl < 5)
		return PKT_MALFORMED;
	if (in.protocol != IPPROTO_TCP && in.protocol != IPPROTO_UDP)
		return PKT_SKIP;
	p->inner_l4_off = p->inner_l3_off + in.ihl * 4;
	/* Only 8 bytes of the quoted L4 header are promised: the ports. */
	if (bpf_skb_load_bytes(skb, p->inner_l4_off, &sport, sizeof(sport)) < 0 ||
	    bpf_skb_load_bytes(skb, p->inner_l4_off + 2, &dport, sizeof(dport)) < 0)
		return PKT_MALFORMED;
	(void)flags;
	v6addr_set_v4(&p->t.saddr, in.daddr);
	v6addr_set_v4(&p->t.daddr, in.saddr);
	p->t.sport = dport;
	p->t.dport = sport;
	p->t.proto = in.protocol;
	return PKT_ICMP_ERR;
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct pkt *p)
{
	struct iphdr ip;
	__u16 frag;

	if (hdr_load(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return PKT_MALFORMED;
	if (ip.version != 4 || ip.ihl < 5 || bpf_ntohs(ip.tot_len) < ip.ihl * 4 ||
	    skb->len < ETH_HLEN + bpf_ntohs(ip.tot_len))
		return PKT_MALFORMED;
	p->family = AF_INET;
	p->l4_off = ETH_HLEN + ip.ihl * 4;
	frag = bpf_ntohs(ip.frag_off);
	if (frag & IP_OFFSET)
		return PKT_SKIP; /* no L4 header: cannot be matched */
	p->frag = !!(frag & IP_MF);
	if (ip.protocol == IPPROTO_ICMP) {
		p->outer_saddr = ip.saddr;
		p->outer_daddr = ip.daddr;
		return parse_icmp4_err(skb, p);
	}
	if (ip.protocol != IPPROTO_TCP && ip.protocol != IPPROTO_UDP)
		return PKT_SKIP;
	if (!parse_ports(skb, p->l4_off, ip.protocol, &p->t.sport, &p->t.dport, &p->tcp_flags))
		return PKT_MALFORMED;
	v6addr_set_v4(&p->t.saddr, ip.saddr);
	v6addr_set_v4(&p->t.daddr, ip.daddr);
	p->t.proto = ip.protocol;
	return PKT_L4;
}

#define ICMPV6_DEST_UNREACH	1
#define ICMPV6_PKT_TOOBIG	2
#define ICMPV6_TIME_EXCEED	3

/* parse_icmp6_err is parse_icmp4_err for ICMPv6: destination
 * unreachable, packet too big and time exceeded quoting TCP or UDP. */
static __always_inline int parse_icmp6_err(struct __sk_buff *skb, struct pkt *p)
{
	struct icmp6hdr ih;
	struct ipv6hdr in;
	__be16 ports[2];

	if (hdr_load(skb, p->l4_off, &ih, sizeof(ih)) < 0)
		return PKT_MALFORMED;
	if (ih.icmp6_type != ICMPV6_DEST_UNREACH && ih.icmp6_type != ICMPV6_PKT_TOOBIG && ih.icmp6_type != ICMPV6_TIME_EXCEED)
		return PKT_SKIP;
	p->inner_l3_off = p->l4_off + sizeof(ih);
	if (hdr_load(skb, p->inner_l3_off, &in, sizeof(in)) < 0 || in.version != 6)
		return PKT_MALFORMED;
	if (in.nexthdr != IPPROTO_TCP && in.nexthdr != IPPROTO_UDP)
		return PKT_SKIP;
	p->inner_l4_off = p->inner_l3_off + sizeof(in);
	if (hdr_load(skb, p->inner_l4_off, ports, sizeof(ports)) < 0)
		return PKT_MALFORMED;
	__builtin_memcpy(&p->t.saddr, &in.daddr, 16);
	__builtin_memcpy(&p->t.daddr, &in.saddr, 16);
	p->t.sport = ports[1];
	p->t.dport = ports[0];
	p->t.proto = in.nexthdr;
	return PKT_ICMP_ERR;
}

/* IPv6 packets with extension headers are not load-balanced. */
static __always_inline int parse_ipv6(struct __sk_buff *skb, struct pkt *p)
{
	struct ipv6hdr ip6;

	if (hdr_load(skb, ETH_HLEN, &ip6, sizeof(ip6)) < 0)
		return PKT_MALFORMED;
	if (ip6.version != 6 || skb->len < ETH_HLEN + sizeof(ip6) + bpf_ntohs(ip6.payload_len))
		return PKT_MALFORMED;
	p->family = AF_INET6;
	p->l4_off = ETH_HLEN + sizeof(ip6);
	if (ip6.nexthdr == NEXTHDR_ICMPV6) {
		__builtin_memcpy(&p->outer6_saddr, &ip6.saddr, 16);
		__builtin_memcpy(&p->outer6_daddr, &ip6.daddr, 16);
		return parse_icmp6_err(skb, p);
	}
	if (ip6.nexthdr != IPPROTO_TCP && ip6.nexthdr != IPPROTO_UDP)
		return PKT_SKIP;
	if (!parse_ports(skb, p->l4_off, ip6.nexthdr, &p->t.sport, &p->t.dport, &p->tcp_flags))
		return PKT_MALFORMED;
	__builtin_memcpy(&p->t.saddr, &ip6.saddr, 16);
	__builtin_memcpy(&p->t.daddr, &ip6.daddr, 16);
	p->t.proto = ip6.nexthdr;
	return PKT_L4;
}

/* pkt_parse classifies the packet and fills p; dir goes into the tuple. */
static __always_inline int pkt_parse(struct __sk_buff *skb, struct pkt *p, __u8 dir)
{
	int kind = PKT_SKIP;

	p->t.dir = dir;
	if (skb->protocol == bpf_htons(ETH_P_IP))
		kind = parse_ipv4(skb, p);
	else if (skb->protocol == bpf_htons(ETH_P_IPV6))
		kind = parse_ipv6(skb, p);
	p->kind = kind;
	if (kind == PKT_MALFORMED)
		stat_inc(STAT_MALFORMED);
	return kind;
}

static __always_inline __u32 l4_csum_off(const struct pkt *p, __u8 proto)
{
	return p->l4_off + (proto == IPPROTO_TCP ? 16 : 6);
}

static __always_inline __u64 l4_csum_flags(__u8 proto)
{
	/* A UDP/IPv4 checksum of 0 means "none" and must stay 0. */
	return proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* pkt_set_addr rewrites the source (src) or destination address of a
 * TCP/UDP packet and fixes the IPv4 header and pseudo-header checksums. */
static __always_inline int
pkt_set_addr(struct __sk_buff *skb, const struct pkt *p, bool src, const union v6addr *old, const union v6addr *new)
{
	__u64 fl = BPF_F_PSEUDO_HDR | l4_csum_flags(p->t.proto);

	if (v6addr_eq(old, new))
		return 0;
	if (p->family == AF_INET) {
		__be32 o = old->p[3], n = new->p[3];

		if (bpf_l4_csum_replace(skb, l4_csum_off(p, p->t.proto), o, n, fl | sizeof(n)) < 0 ||
		    bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), o, n, sizeof(n)) < 0)
			return -1;
		return hdr_store(skb, ETH_HLEN + (src ? offsetof(struct iphdr, saddr) : offsetof(struct iphdr, daddr)),
				 &n, sizeof(n));
	}
	{
		__s64 diff = bpf_csum_diff((__be32 *)old->p, 16, (__be32 *)new->p, 16, 0);

		if (bpf_l4_csum_replace(skb, l4_csum_off(p, p->t.proto), 0, diff, fl) < 0)
			return -1;
		return hdr_store(skb, ETH_HLEN + (src ? offsetof(struct ipv6hdr, saddr) : offsetof(struct ipv6hdr, daddr)),
				 new->addr, 16);
	}
}

static __always_inline int
pkt_set_port(struct __sk_buff *skb, const struct pkt *p, __u32 off, __u32 csum_off, __be16 old, __be16 new, __u64 fl)
{
	if (old == new)
		return 0;
	if (bpf_l4_csum_replace(skb, csum_off, old, new, fl | sizeof(new)) < 0)
		return -1;
	return hdr_store(skb, off, &new, sizeof(new));
}

/* pkt_apply rewrites the packet's tuple into the entry's. */
static __always_inline int pkt_apply(struct __sk_buff *skb, const struct pkt *p, const struct ct_entry *e)
{
	__u32 csum = l4_csum_off(p, p->t.proto);
	__u64 fl = l4_csum_flags(p->t.proto);

	if (pkt_set_addr(skb, p, true, &p->t.saddr, &e->saddr) < 0 ||
	    pkt_set_addr(skb, p, false, &p->t.daddr, &e->daddr) < 0 ||
	    pkt_set_port(skb, p, p->l4_off, csum, p->t.sport, e->sport, fl) < 0 ||
	    pkt_set_port(skb, p, p->l4_off + 2, csum, p->t.dport, e->dport, fl) < 0)
		return -1;
	return 0;
}

static __always_inline int ipv4_set_addr_l3(struct __sk_buff *skb, __u32 l3_off, bool src, __be32 old, __be32 new)
{
	if (old == new)
		return 0;
	if (bpf_l3_csum_replace(skb, l3_off + offsetof(struct iphdr, check), old, new, sizeof(new)) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, l3_off + (src ? offsetof(struct iphdr, saddr) : offsetof(struct iphdr, daddr)),
				   &new, sizeof(new), 0);
}

/* pkt_apply_icmp4_err translates an ICMP error about a tracked flow. p->t
 * is the reverse of the quoted packet and e what that tuple becomes, so
 * the quoted packet becomes the reverse of e; the error goes to whoever
 * sent the quoted packet, and appears to come from the translated peer
 * when the peer itself reported it. The quoted header's checksum is kept
 * right, which leaves the ICMP checksum unchanged by address rewrites;
 * port rewrites are folded into it. */
static __always_inline int pkt_apply_icmp4_err(struct __sk_buff *skb, const struct pkt *p, const struct ct_entry *e)
{
	__u32 icmp_csum = p->l4_off + offsetof(struct icmphdr, checksum);

	if (ipv4_set_addr_l3(skb, p->inner_l3_off, true, p->t.daddr.p[3], e->daddr.p[3]) < 0 ||
	    ipv4_set_addr_l3(skb, p->inner_l3_off, false, p->t.saddr.p[3], e->saddr.p[3]) < 0 ||
	    pkt_set_port(skb, p, p->inner_l4_off, icmp_csum, p->t.dport, e->dport, 0) < 0 ||
	    pkt_set_port(skb, p, p->inner_l4_off + 2, icmp_csum, p->t.sport, e->sport, 0) < 0)
		return -1;
	if (ipv4_set_addr_l3(skb, ETH_HLEN, false, p->outer_daddr, e->daddr.p[3]) < 0)
		return -1;
	if (p->outer_saddr == p->t.saddr.p[3] &&
	    ipv4_set_addr_l3(skb, ETH_HLEN, true, p->outer_saddr, e->saddr.p[3]) < 0)
		return -1;
	return 0;
}

/* icmp6_set_addr rewrites 16 address bytes at off and folds the change
 * into the ICMPv6 checksum, which covers the outer addresses (pseudo
 * header, pseudo set) and the quoted packet (pseudo clear). */
static __always_inline int
icmp6_set_addr(struct __sk_buff *skb, const struct pkt *p, __u32 off, const union v6addr *old, const union v6addr *new, bool pseudo)
{
	__s64 diff;

	if (v6addr_eq(old, new))
		return 0;
	diff = bpf_csum_diff((__be32 *)old->p, 16, (__be32 *)new->p, 16, 0);
	if (bpf_l4_csum_replace(skb, p->l4_off + offsetof(struct icmp6hdr, icmp6_cksum), 0, diff, pseudo ? BPF_F_PSEUDO_HDR : 0) < 0)
		return -1;
	return hdr_store(skb, off, new->addr, 16);
}

/* pkt_apply_icmp6_err is pkt_apply_icmp4_err for ICMPv6. */
static __always_inline int pkt_apply_icmp6_err(struct __sk_buff *skb, const struct pkt *p, const struct ct_entry *e)
{
	__u32 csum = p->l4_off + offsetof(struct icmp6hdr, icmp6_cksum);

	if (icmp6_set_addr(skb, p, p->inner_l3_off + offsetof(struct ipv6hdr, saddr), &p->t.daddr, &e->daddr, false) < 0 ||
	    icmp6_set_addr(skb, p, p->inner_l3_off + offsetof(struct ipv6hdr, daddr), &p->t.saddr, &e->saddr, false) < 0 ||
	    pkt_set_port(skb, p, p->inner_l4_off, csum, p->t.dport, e->dport, 0) < 0 ||
	    pkt_set_port(skb, p, p->inner_l4_off + 2, csum, p->t.sport, e->sport, 0) < 0 ||
	    icmp6_set_addr(skb, p, ETH_HLEN + offsetof(struct ipv6hdr, daddr), &p->outer6_daddr, &e->daddr, true) < 0)
		return -1;
	if (v6addr_eq(&p->outer6_saddr, &p->t.saddr) &&
	    icmp6_set_addr(skb, p, ETH_HLEN + offsetof(struct ipv6hdr, saddr), &p->outer6_saddr, &e->saddr, true) < 0)
		return -1;
	return 0;
}

/* pkt_forward sends a translated packet straight out of the device the
 * FIB picks: a packet SNATed to a node address must not go back through
 * the stack's input path, which drops local source addresses as martian. */
static __always_inline int pkt_forward(struct __sk_buff *skb, const struct pkt *p, const struct ct_entry *e)
{
	struct bpf_fib_lookup fib = {};
	__u32 ifindex = skb->ingress_ifindex;
	int rc;

	/* Read each field once: the verifier refuses a ctx pointer the
	 * compiler offsets at run time. */
	if (!ifindex)
		ifindex = skb->ifindex;
	asm volatile("" : "+r"(ifindex));
	fib.ifindex = ifindex;
	fib.l4_protocol = p->t.proto;
	fib.tot_len = skb->len - ETH_HLEN;
	if (p->family == AF_INET) {
		__u8 ttl;

		fib.family = AF_INET;
		fib.ipv4_src = e->saddr.p[3];
		fib.ipv4_dst = e->daddr.p[3];
		if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct iphdr, ttl), &ttl, 1) < 0 || ttl <= 1)
			return TC_ACT_OK; /* the stack answers with time exceeded */
		if (bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), bpf_htons(ttl << 8),
					bpf_htons((ttl - 1) << 8), 2) < 0)
			return TC_ACT_SHOT;
		ttl--;
		bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct iphdr, ttl), &ttl, 1, 0);
	} else {
		__u8 hl;

		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, e->saddr.p, 16);
		__builtin_memcpy(fib.ipv6_dst, e->daddr.p, 16);
		if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct ipv6hdr, hop_limit), &hl, 1) < 0 || hl <= 1)
			return TC_ACT_OK;
		hl--;
		bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct ipv6hdr, hop_limit), &hl, 1, 0);
	}
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (bpf_skb_store_bytes(skb, 0, fib.dmac, ETH_ALEN, 0) < 0 ||
		    bpf_skb_store_bytes(skb, ETH_ALEN, fib.smac, ETH_ALEN, 0) < 0)
			return TC_ACT_SHOT;
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
	stat_inc(STAT_DROP_FIB);
	return TC_ACT_SHOT;
}
