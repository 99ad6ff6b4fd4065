/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-packet ClusterIP translation for pods that socket LB must not serve
 * (--socket-lb-host-only: service meshes that redirect a pod's traffic,
 * sandboxed runtimes whose sockets live in another kernel). Runs on the
 * host side of pod veths: packets leaving the pod are translated to a
 * backend at ingress, replies entering it are translated back at egress.
 *
 * A pod reaching itself through a Service (hairpin) would answer its own
 * packet inside its namespace, never through the veth: such flows are
 * SNATed to HAIRPIN_IP4 and sent straight back into the pod, and the reply
 * to that address comes out through the veth to be translated back.
 */
#pragma once

#include "nodeport.h"

/* 169.254.42.1, link-local: never a real peer of a pod. */
#define HAIRPIN_IP4	bpf_htonl(0xa9fe2a01)

/* pod_hairpin sends a packet back into the pod it came from: the frame's
 * addresses are swapped so the pod's device takes it as its own. */
static __always_inline int pod_hairpin(struct __sk_buff *skb)
{
	__u8 macs[2 * ETH_ALEN], swapped[2 * ETH_ALEN];

	if (bpf_skb_load_bytes(skb, 0, macs, sizeof(macs)) < 0)
		return TC_ACT_SHOT;
	__builtin_memcpy(swapped, macs + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(swapped + ETH_ALEN, macs, ETH_ALEN);
	if (bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

static __always_inline int pod_new(struct __sk_buff *skb, const struct pkt *p)
{
	const struct lb_service *svc = lb_ext_service(p, LB_SCOPE_EXT);
	struct ct_entry fwd = {}, rval = {};
	struct ct_key rkey = {};
	__u32 now = lb_now_sec(), id = 0;
	bool hairpin;

	if (!svc) {
		ct_forget_reply(p, CT_POD_IN);
		return TC_ACT_OK;
	}
	if (p->frag)
		return drop(STAT_DROP_FRAG);
	if (svc->count == 0)
		return drop(STAT_DROP_NO_BACKEND);
	if (svc->flags & LB_SVC_AFFINITY)
		id = lb_ext_affinity(p, svc);
	if (!id)
		id = lb_ext_slot_backend(p, LB_SCOPE_EXT, lb_random_slot(svc));
	if (!id || lb_backend_addr(p->family, id, &fwd) < 0)
		return drop(STAT_DROP_NO_BACKEND);
	if (svc->flags & LB_SVC_AFFINITY) {
		struct lb_affinity_ext_key key = { .client = p->t.saddr, .rev_nat_id = svc->rev_nat_index };
		struct lb_affinity_val val = { .backend_id = id, .last_used = now };

		bpf_map_update_elem(&hl_lb_affx, &key, &val, BPF_ANY);
	}
	hairpin = v6addr_eq(&fwd.daddr, &p->t.saddr);
	if (hairpin && p->family != AF_INET)
		return drop(STAT_DROP_NO_BACKEND); /* IPv6 hairpin: not supported */

	fwd.saddr = p->t.saddr;
	fwd.sport = p->t.sport;
	fwd.backend_id = id;
	fwd.rev_nat_index = svc->rev_nat_index;
	fwd.flags = ct_next_flags(CT_F_POD, p);
	fwd.expires = now + ct_timeout(fwd.flags, p->t.proto);
	if (hairpin) {
		v6addr_set_v4(&fwd.saddr, HAIRPIN_IP4);
		fwd.flags |= CT_F_HAIRPIN;
	}
	/* The reply: backend → client (or → hairpin address, out of the pod). */
	rkey.saddr = fwd.daddr;
	rkey.sport = fwd.dport;
	rkey.daddr = fwd.saddr;
	rkey.dport = fwd.sport;
	rkey.proto = p->t.proto;
	rkey.dir = hairpin ? CT_POD_OUT : CT_POD_IN;
	rval.saddr = p->t.daddr;
	rval.sport = p->t.dport;
	rval.daddr = p->t.saddr;
	rval.dport = p->t.sport;
	rval.backend_id = id;
	rval.rev_nat_index = svc->rev_nat_index;
	rval.flags = fwd.flags | CT_F_REPLY;
	rval.expires = fwd.expires;
	if (bpf_map_update_elem(&hl_ct, &rkey, &rval, BPF_ANY) < 0 ||
	    bpf_map_update_elem(&hl_ct, &p->t, &fwd, BPF_ANY) < 0)
		return drop(STAT_DROP_CT_FULL);
	if (pkt_apply(skb, p, &fwd) < 0)
		return TC_ACT_SHOT;
	stat_inc(STAT_XLATE_NEW);
	return hairpin ? pod_hairpin(skb) : TC_ACT_OK;
}

/* pod_out handles a packet leaving a pod. */
static __always_inline int pod_out(struct __sk_buff *skb)
{
	struct pkt p = {};
	struct ct_entry *e;
	__u32 now;
	int ret;

	if (pkt_parse(skb, &p, CT_POD_OUT) != PKT_L4)
		return TC_ACT_OK;
	e = bpf_map_lookup_elem(&hl_ct, &p.t);
	if (!e)
		return pod_new(skb, &p);
	now = lb_now_sec();
	if (!ct_alive(e, now) || ct_is_new_syn(e, &p) ||
	    (!(e->flags & CT_F_REPLY) && !ct_backend_alive(e, p.family)))
		return pod_new(skb, &p);
	ret = ct_xlate(skb, &p, e, now, true);
	if (ret != TC_ACT_OK)
		return ret;
	return (e->flags & CT_F_HAIRPIN) ? pod_hairpin(skb) : TC_ACT_OK;
}

/* pod_in handles a packet entering a pod: replies from backends. */
static __always_inline int pod_in(struct __sk_buff *skb)
{
	struct pkt p = {};
	struct ct_entry *e;
	__u32 now;

	if (pkt_parse(skb, &p, CT_POD_IN) != PKT_L4)
		return TC_ACT_OK;
	e = bpf_map_lookup_elem(&hl_ct, &p.t);
	if (!e)
		return TC_ACT_OK;
	now = lb_now_sec();
	if (!ct_alive(e, now))
		return TC_ACT_OK;
	return ct_xlate(skb, &p, e, now, false);
}
