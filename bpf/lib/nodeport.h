/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-packet load balancing of traffic that arrives from outside the node:
 * NodePort on node addresses, ExternalIPs and LoadBalancer ingress IPs.
 *
 * A new flow picks a backend (affinity, Maglev or random) and gets a
 * forward CT entry (client → frontend becomes client → backend). A local
 * backend answers through the node's device, where the egress program
 * finds a reverse entry (backend → client becomes frontend → client). A
 * backend on another node is reached with SNAT to the node address: the
 * port comes from inserting the reply tuple into hl_nat, and replies are
 * translated back at ingress. Client addresses are kept whenever the
 * backend is local, and always with externalTrafficPolicy Local.
 */
#pragma once

#include "ct.h"
#include "jhash.h"

#define NAT_PORT_TRIES	16

static __always_inline const struct host_config *host_cfg(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&hl_host_cfg, &zero);
}

/* lb_ext_service finds the slot 0 of the frontend p is sent to. */
static __always_inline const struct lb_service *lb_ext_service(const struct pkt *p, __u8 scope)
{
	if (p->family == AF_INET) {
		struct lb4_key k = { .address = p->t.daddr.p[3], .dport = p->t.dport, .proto = p->t.proto, .scope = scope };

		return lb4_lookup_service(&k);
	} else {
		struct lb6_key k = { .address = p->t.daddr, .dport = p->t.dport, .proto = p->t.proto, .scope = scope };

		return lb6_lookup_service(&k);
	}
}

static __always_inline __u32 lb_ext_slot_backend(const struct pkt *p, __u8 scope, __u16 slot)
{
	const struct lb_service *s;

	if (p->family == AF_INET) {
		struct lb4_key k = { .address = p->t.daddr.p[3], .dport = p->t.dport, .proto = p->t.proto,
				     .scope = scope, .backend_slot = slot };

		s = bpf_map_lookup_elem(&hl_lb4_svc, &k);
	} else {
		struct lb6_key k = { .address = p->t.daddr, .dport = p->t.dport, .proto = p->t.proto,
				     .scope = scope, .backend_slot = slot };

		s = bpf_map_lookup_elem(&hl_lb6_svc, &k);
	}
	return s ? s->backend_id : 0;
}

/* lb_backend_addr fills the entry's destination with backend id's address
 * and returns its flags, or -1 when the id is unknown. */
static __always_inline int lb_backend_addr(__u8 family, __u32 id, struct ct_entry *e)
{
	if (family == AF_INET) {
		const struct lb4_backend *be = lb4_backend(id);

		if (!be)
			return -1;
		v6addr_set_v4(&e->daddr, be->address);
		e->dport = be->port;
		return be->flags;
	} else {
		const struct lb6_backend *be = lb6_backend(id);

		if (!be)
			return -1;
		e->daddr = be->address;
		e->dport = be->port;
		return be->flags;
	}
}

static __always_inline __u32 lb_flow_hash(const struct pkt *p)
{
	return jhash_6words(p->t.saddr.p[0], p->t.saddr.p[1], p->t.saddr.p[2], p->t.saddr.p[3],
			    ((__u32)p->t.sport << 16) | p->t.dport, p->t.proto);
}

static __always_inline __u32 lb_maglev_backend(const struct pkt *p, const struct lb_service *svc)
{
	const struct host_config *cfg = host_cfg();
	__u32 idx, *id;
	void *lut;

	if (!cfg || cfg->maglev_size == 0)
		return 0;
	lut = bpf_map_lookup_elem(&hl_lb_maglev, &svc->rev_nat_index);
	if (!lut)
		return 0;
	idx = lb_flow_hash(p) % cfg->maglev_size;
	id = bpf_map_lookup_elem(lut, &idx);
	return id ? *id : 0;
}

static __always_inline __u32 lb_ext_affinity(const struct pkt *p, const struct lb_service *svc)
{
	struct lb_affinity_ext_key key = { .client = p->t.saddr, .rev_nat_id = svc->rev_nat_index };
	struct lb_affinity_match_key match = { .rev_nat_id = svc->rev_nat_index };
	const struct lb_affinity_val *val;

	val = bpf_map_lookup_elem(&hl_lb_affx, &key);
	if (!val || lb_now_sec() - val->last_used > svc->backend_id)
		return 0;
	match.backend_id = val->backend_id;
	if (!bpf_map_lookup_elem(&hl_lb_affm, &match))
		return 0;
	return val->backend_id;
}

static __always_inline bool lb_src_allowed(const struct pkt *p, const struct lb_service *svc)
{
	struct lb_srcrange_key key = { .prefixlen = 32 + 128, .rev_nat_id = svc->rev_nat_index, .addr = p->t.saddr };

	return bpf_map_lookup_elem(&hl_lb_srcr, &key) != NULL;
}

static __always_inline int drop(enum hl_stat s)
{
	stat_inc(s);
	return TC_ACT_SHOT;
}

/* lb_snat allocates a node port for a flow to a remote backend: fwd gets
 * the node address and port as its source, and hl_nat the reply's way
 * back. */
static __always_inline int lb_snat(const struct pkt *p, struct ct_entry *fwd, __u32 now)
{
	const struct host_config *cfg = host_cfg();
	struct ct_key rkey = { .sport = fwd->dport, .proto = p->t.proto, .dir = CT_INGRESS };
	struct ct_entry rval = {
		.saddr = p->t.daddr, .sport = p->t.dport, .daddr = p->t.saddr, .dport = p->t.sport,
		.backend_id = fwd->backend_id, .rev_nat_index = fwd->rev_nat_index,
		.flags = CT_F_REPLY | CT_F_SNAT, .expires = fwd->expires,
	};
	__u32 range, start;

	if (!cfg || cfg->nat_port_max < cfg->nat_port_min)
		return -1;
	rkey.saddr = fwd->daddr;
	rkey.daddr = p->family == AF_INET ? cfg->snat4 : cfg->snat6;
	if (v6addr_zero(&rkey.daddr))
		return -1;
	range = cfg->nat_port_max - cfg->nat_port_min + 1;
	start = bpf_get_prandom_u32();
	for (int i = 0; i < NAT_PORT_TRIES; i++) {
		rkey.dport = bpf_htons(cfg->nat_port_min + (start + i) % range);
		if (bpf_map_update_elem(&hl_nat, &rkey, &rval, BPF_NOEXIST) == 0) {
			fwd->saddr = rkey.daddr;
			fwd->sport = rkey.dport;
			fwd->flags |= CT_F_SNAT;
			return 0;
		}
	}
	return -1;
}

/* lb_nat_lookup finds the SNAT entry of a reply; only packets to the
 * node's SNAT address can have one, which spares every other packet a
 * lookup. */
static __always_inline struct ct_entry *lb_nat_lookup(const struct pkt *p)
{
	const struct host_config *cfg = host_cfg();

	if (!cfg || !v6addr_eq(&p->t.daddr, p->family == AF_INET ? &cfg->snat4 : &cfg->snat6))
		return NULL;
	return bpf_map_lookup_elem(&hl_nat, &p->t);
}

/* lb_ext_new handles the first packet of a flow from outside. */
static __always_inline int lb_ext_new(struct __sk_buff *skb, const struct pkt *p)
{
	const struct lb_service *svc;
	struct ct_entry fwd = {};
	__u32 now = lb_now_sec(), id = 0;
	bool ext_local = false;
	int be_flags;
	__u8 scope = LB_SCOPE_EXT;

	svc = lb_ext_service(p, LB_SCOPE_EXT);
	if (!svc || !(svc->flags & (LB_SVC_EXTERNAL_IP | LB_SVC_NODEPORT | LB_SVC_LOADBALANCER))) {
		ct_forget_reply(p, CT_EGRESS);
		return TC_ACT_OK;
	}
	if (p->frag)
		return drop(STAT_DROP_FRAG);
	if ((svc->flags & LB_SVC_SRC_RANGES) && !lb_src_allowed(p, svc))
		return drop(STAT_DROP_SRC_RANGE);
	if (svc->flags & LB_SVC_EXT_LOCAL) {
		ext_local = true;
		scope = LB_SCOPE_LOCAL;
		svc = lb_ext_service(p, LB_SCOPE_LOCAL);
		if (!svc)
			return drop(STAT_DROP_NO_BACKEND);
	}
	if (svc->count == 0)
		return drop(STAT_DROP_NO_BACKEND);

	if (svc->flags & LB_SVC_AFFINITY)
		id = lb_ext_affinity(p, svc);
	if (!id && svc->algorithm == LB_ALG_MAGLEV)
		id = lb_maglev_backend(p, svc);
	if (!id)
		id = lb_ext_slot_backend(p, scope, lb_random_slot(svc));
	be_flags = id ? lb_backend_addr(p->family, id, &fwd) : -1;
	if (be_flags < 0)
		return drop(STAT_DROP_NO_BACKEND);
	if (svc->flags & LB_SVC_AFFINITY) {
		struct lb_affinity_ext_key key = { .client = p->t.saddr, .rev_nat_id = svc->rev_nat_index };
		struct lb_affinity_val val = { .backend_id = id, .last_used = now };

		bpf_map_update_elem(&hl_lb_affx, &key, &val, BPF_ANY);
	}

	fwd.saddr = p->t.saddr;
	fwd.sport = p->t.sport;
	fwd.backend_id = id;
	fwd.rev_nat_index = svc->rev_nat_index;
	fwd.flags = ct_next_flags(0, p);
	fwd.expires = now + ct_timeout(fwd.flags, p->t.proto);
	if (!ext_local && !(be_flags & LB_BE_LOCAL)) {
		if (lb_snat(p, &fwd, now) < 0)
			return drop(STAT_DROP_NAT_PORTS);
	} else {
		struct ct_key rkey = { .saddr = fwd.daddr, .daddr = p->t.saddr, .sport = fwd.dport,
				       .dport = p->t.sport, .proto = p->t.proto, .dir = CT_EGRESS };
		struct ct_entry rval = { .saddr = p->t.daddr, .sport = p->t.dport, .daddr = p->t.saddr,
					 .dport = p->t.sport, .backend_id = id, .rev_nat_index = svc->rev_nat_index,
					 .flags = fwd.flags | CT_F_REPLY, .expires = fwd.expires };

		if (bpf_map_update_elem(&hl_ct, &rkey, &rval, BPF_ANY) < 0)
			return drop(STAT_DROP_CT_FULL);
	}
	if (bpf_map_update_elem(&hl_ct, &p->t, &fwd, BPF_ANY) < 0)
		return drop(STAT_DROP_CT_FULL);
	if (pkt_apply(skb, p, &fwd) < 0)
		return TC_ACT_SHOT;
	stat_inc(STAT_XLATE_NEW);
	return (fwd.flags & CT_F_SNAT) ? pkt_forward(skb, p, &fwd) : TC_ACT_OK;
}

/* ct_xlate translates a packet of a tracked flow as entry e says and
 * moves the entry's state on; TC_ACT_OK when done, else the verdict to
 * return (fragments of translated flows cannot be followed: dropped). */
static __always_inline int
ct_xlate(struct __sk_buff *skb, const struct pkt *p, struct ct_entry *e, __u32 now, bool drop_frag)
{
	if (drop_frag && p->frag)
		return drop(STAT_DROP_FRAG);
	ct_refresh(e, p, now);
	if (pkt_apply(skb, p, e) < 0)
		return TC_ACT_SHOT;
	stat_inc(STAT_XLATE_EST);
	return TC_ACT_OK;
}

/* lb_icmp_err translates an ICMP error about a tracked flow; maps are
 * searched in order (hl_ct, then hl_nat on ingress). */
static __always_inline int lb_icmp_err(struct __sk_buff *skb, const struct pkt *p, bool ingress)
{
	struct ct_entry *e = bpf_map_lookup_elem(&hl_ct, &p->t);
	bool forward = false;

	if (!e && ingress) {
		e = bpf_map_lookup_elem(&hl_nat, &p->t);
		forward = true;
	}
	if (!e)
		return TC_ACT_OK;
	if (ingress && (e->flags & CT_F_SNAT))
		forward = true;
	if ((p->family == AF_INET ? pkt_apply_icmp4_err(skb, p, e) : pkt_apply_icmp6_err(skb, p, e)) < 0)
		return TC_ACT_SHOT;
	stat_inc(STAT_XLATE_ICMP);
	if (forward) {
		/* The error goes where the quoted packet came from. */
		struct ct_entry to = { .saddr = e->saddr, .daddr = e->daddr };

		return pkt_forward(skb, p, &to);
	}
	return TC_ACT_OK;
}

static __always_inline int host_ingress(struct __sk_buff *skb)
{
	struct pkt p = {};
	struct ct_entry *e;
	__u32 now;
	int ret;

	switch (pkt_parse(skb, &p, CT_INGRESS)) {
	case PKT_L4:
		break;
	case PKT_ICMP_ERR:
		return lb_icmp_err(skb, &p, true);
	default:
		return TC_ACT_OK;
	}
	/* The clock only matters to tracked packets: read it after a hit. */
	e = bpf_map_lookup_elem(&hl_ct, &p.t);
	if (!e)
		e = lb_nat_lookup(&p);
	if (!e)
		return lb_ext_new(skb, &p);
	now = lb_now_sec();
	if (!ct_alive(e, now) ||
	    (!(e->flags & CT_F_REPLY) && (ct_is_new_syn(e, &p) || !ct_backend_alive(e, p.family))))
		return lb_ext_new(skb, &p);
	ret = ct_xlate(skb, &p, e, now, true);
	if (ret != TC_ACT_OK)
		return ret;
	/* SNAT replies and SNATed requests leave the way the FIB says. */
	return (e->flags & (CT_F_REPLY | CT_F_SNAT)) ? pkt_forward(skb, &p, e) : TC_ACT_OK;
}

static __always_inline int host_egress(struct __sk_buff *skb)
{
	struct pkt p = {};
	struct ct_entry *e;
	__u32 now;

	switch (pkt_parse(skb, &p, CT_EGRESS)) {
	case PKT_L4:
		break;
	case PKT_ICMP_ERR:
		return lb_icmp_err(skb, &p, false);
	default:
		return TC_ACT_OK;
	}
	e = bpf_map_lookup_elem(&hl_ct, &p.t);
	if (!e)
		return TC_ACT_OK;
	now = lb_now_sec();
	if (!ct_alive(e, now))
		return TC_ACT_OK;
	return ct_xlate(skb, &p, e, now, true);
}
