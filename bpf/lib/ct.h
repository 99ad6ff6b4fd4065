/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection tracking: entry lifetimes that follow TCP state, refreshed
 * at most once a second per flow so established packets rarely write. */
#pragma once

#include "pkt.h"
#include "lb.h"

#define CT_SYN_TIMEOUT		60
#define CT_TCP_TIMEOUT		21600
#define CT_CLOSE_TIMEOUT	10
#define CT_UDP_TIMEOUT		60

static __always_inline bool ct_alive(const struct ct_entry *e, __u32 now)
{
	return e->expires >= now;
}

static __always_inline __u8 ct_next_flags(__u8 flags, const struct pkt *p)
{
	if (p->t.proto != IPPROTO_TCP)
		return flags;
	if (p->tcp_flags & (TCP_FIN | TCP_RST))
		return flags | CT_F_CLOSING;
	if ((p->tcp_flags & (TCP_ACK | TCP_SYN)) == TCP_ACK)
		return flags | CT_F_SEEN_ACK;
	return flags;
}

static __always_inline __u32 ct_timeout(__u8 flags, __u8 proto)
{
	if (proto != IPPROTO_TCP)
		return CT_UDP_TIMEOUT;
	if (flags & CT_F_CLOSING)
		return CT_CLOSE_TIMEOUT;
	if (flags & CT_F_SEEN_ACK)
		return CT_TCP_TIMEOUT;
	return CT_SYN_TIMEOUT;
}

/* ct_refresh moves the entry's state and expiry on for packet p. */
static __always_inline void ct_refresh(struct ct_entry *e, const struct pkt *p, __u32 now)
{
	__u8 flags = ct_next_flags(e->flags, p);
	__u32 expires = now + ct_timeout(flags, p->t.proto);

	if (flags != e->flags)
		e->flags = flags;
	if (expires != e->expires)
		e->expires = expires;
}

/* ct_is_new_syn reports a SYN reusing the tuple of a closing flow: a new
 * connection, which picks its backend afresh. */
static __always_inline bool ct_is_new_syn(const struct ct_entry *e, const struct pkt *p)
{
	return p->t.proto == IPPROTO_TCP && (e->flags & CT_F_CLOSING) &&
	       (p->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
}

/* ct_backend_alive reports whether a forward entry's backend is still in
 * the backends map with the address the flow uses: a flow keeps its
 * backend until that backend is removed. */
static __always_inline bool ct_backend_alive(const struct ct_entry *e, __u8 family)
{
	if (family == AF_INET) {
		const struct lb4_backend *be = lb4_backend(e->backend_id);

		return be && be->address == e->daddr.p[3] && be->port == e->dport;
	} else {
		const struct lb6_backend *be = lb6_backend(e->backend_id);

		return be && be->port == e->dport && v6addr_eq(&be->address, &e->daddr);
	}
}

/* ct_forget_reply drops a stale reverse entry that would hijack a new
 * connection made straight to a backend from a port an earlier,
 * translated flow used: the backend's replies must not be rewritten to
 * the old frontend. Only a SYN can start such a connection, so other
 * packets cost nothing. */
static __always_inline void ct_forget_reply(const struct pkt *p, __u8 reply_dir)
{
	struct ct_key k;

	if (p->t.proto != IPPROTO_TCP || (p->tcp_flags & (TCP_SYN | TCP_ACK)) != TCP_SYN)
		return;
	k.saddr = p->t.daddr;
	k.daddr = p->t.saddr;
	k.sport = p->t.dport;
	k.dport = p->t.sport;
	k.proto = p->t.proto;
	k.dir = reply_dir;
	k.pad[0] = 0;
	k.pad[1] = 0;
	bpf_map_delete_elem(&hl_ct, &k);
}
