/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Socket-level load balancing: translate a service frontend to a backend
 * when a socket connects or sends, and back when it receives or asks for
 * its peer. Works on plain (address, port) values so that IPv6 sockets
 * talking to v4-mapped addresses share the IPv4 path.
 */
#pragma once

#include "lb.h"

/* An unconnected UDP socket sends to the same service again and again
 * (DNS): a lookup is cheaper than rewriting an LRU entry that is right. */
static __always_inline bool
sock4_revnat_stale(const struct sock_revnat4_key *key, const struct sock_revnat4_value *val)
{
	const struct sock_revnat4_value *cur = bpf_map_lookup_elem(&hl_sk_rnat4, key);

	return !cur || cur->address != val->address || cur->port != val->port ||
	       cur->rev_nat_index != val->rev_nat_index;
}

static __always_inline bool
sock6_revnat_stale(const struct sock_revnat6_key *key, const struct sock_revnat6_value *val)
{
	const struct sock_revnat6_value *cur = bpf_map_lookup_elem(&hl_sk_rnat6, key);

	return !cur || cur->port != val->port || cur->rev_nat_index != val->rev_nat_index ||
	       cur->address.p[0] != val->address.p[0] || cur->address.p[1] != val->address.p[1] ||
	       cur->address.p[2] != val->address.p[2] || cur->address.p[3] != val->address.p[3];
}

/* sock4_xlate_fwd replaces the address and port with a backend when they name a
 * service frontend. Returns 0 when translated, -ENOENT when not a service,
 * -ECONNREFUSED when the service has no backends, -EHOSTUNREACH when its
 * tables are inconsistent and -ENOMEM when the VIP cannot be remembered. */
static __always_inline int
sock4_xlate_fwd(__u64 cookie, __u64 netns, __u8 proto, __be32 *addr, __be16 *port)
{
	struct lb4_key key = {
		.address = *addr,
		.dport = *port,
		.proto = proto,
		.scope = LB_SCOPE_EXT,
	};
	struct sock_revnat4_key rkey = {};
	struct sock_revnat4_value rval = {};
	const struct lb_service *svc;
	const struct lb4_backend *be;
	__u32 backend_id = 0;

	svc = lb4_lookup_service(&key);
	if (!svc)
		return -ENOENT;
	if (svc->count == 0)
		return -ECONNREFUSED;
	be = NULL;
	if (svc->flags & LB_SVC_AFFINITY) {
		backend_id = lb_affinity_backend(netns, svc);
		if (backend_id)
			be = lb4_backend(backend_id);
	}
	if (!be)
		be = lb4_select_backend(&key, svc, &backend_id);
	if (!be)
		return -EHOSTUNREACH;
	if (svc->flags & LB_SVC_AFFINITY)
		lb_affinity_update(netns, svc, backend_id);

	rkey.cookie = cookie;
	rkey.address = be->address;
	rkey.port = be->port;
	rval.address = *addr;
	rval.port = *port;
	rval.rev_nat_index = svc->rev_nat_index;
	if (sock4_revnat_stale(&rkey, &rval) &&
	    bpf_map_update_elem(&hl_sk_rnat4, &rkey, &rval, BPF_ANY) < 0)
		return -ENOMEM;

	*addr = be->address;
	*port = be->port;
	return 0;
}

/* sock4_xlate_rev turns a backend address seen by this socket back into the
 * VIP it connected to, as long as that service still exists. */
static __always_inline int
sock4_xlate_rev(__u64 cookie, __be32 *addr, __be16 *port)
{
	struct sock_revnat4_key rkey = {
		.cookie = cookie,
		.address = *addr,
		.port = *port,
	};
	const struct sock_revnat4_value *rval;
	const struct lb4_reverse_nat *rn;

	rval = bpf_map_lookup_elem(&hl_sk_rnat4, &rkey);
	if (!rval)
		return -ENOENT;
	rn = bpf_map_lookup_elem(&hl_lb4_rnat, &rval->rev_nat_index);
	if (!rn || rn->address != rval->address || rn->port != rval->port) {
		bpf_map_delete_elem(&hl_sk_rnat4, &rkey);
		return -ENOENT;
	}
	*addr = rval->address;
	*port = rval->port;
	return 0;
}

static __always_inline int
sock6_xlate_fwd(__u64 cookie, __u64 netns, __u8 proto, union v6addr *addr, __be16 *port)
{
	struct lb6_key key = {
		.address = *addr,
		.dport = *port,
		.proto = proto,
		.scope = LB_SCOPE_EXT,
	};
	struct sock_revnat6_key rkey = {};
	struct sock_revnat6_value rval = {};
	const struct lb_service *svc;
	const struct lb6_backend *be;
	__u32 backend_id = 0;

	svc = lb6_lookup_service(&key);
	if (!svc)
		return -ENOENT;
	if (svc->count == 0)
		return -ECONNREFUSED;
	be = NULL;
	if (svc->flags & LB_SVC_AFFINITY) {
		backend_id = lb_affinity_backend(netns, svc);
		if (backend_id)
			be = lb6_backend(backend_id);
	}
	if (!be)
		be = lb6_select_backend(&key, svc, &backend_id);
	if (!be)
		return -EHOSTUNREACH;
	if (svc->flags & LB_SVC_AFFINITY)
		lb_affinity_update(netns, svc, backend_id);

	rkey.cookie = cookie;
	rkey.address = be->address;
	rkey.port = be->port;
	rval.address = *addr;
	rval.port = *port;
	rval.rev_nat_index = svc->rev_nat_index;
	if (sock6_revnat_stale(&rkey, &rval) &&
	    bpf_map_update_elem(&hl_sk_rnat6, &rkey, &rval, BPF_ANY) < 0)
		return -ENOMEM;

	*addr = be->address;
	*port = be->port;
	return 0;
}

static __always_inline int
sock6_xlate_rev(__u64 cookie, union v6addr *addr, __be16 *port)
{
	struct sock_revnat6_key rkey = {
		.cookie = cookie,
		.address = *addr,
		.port = *port,
	};
	const struct sock_revnat6_value *rval;
	const struct lb6_reverse_nat *rn;

	rval = bpf_map_lookup_elem(&hl_sk_rnat6, &rkey);
	if (!rval)
		return -ENOENT;
	rn = bpf_map_lookup_elem(&hl_lb6_rnat, &rval->rev_nat_index);
	if (!rn || rn->port != rval->port ||
	    rn->address.p[0] != rval->address.p[0] || rn->address.p[1] != rval->address.p[1] ||
	    rn->address.p[2] != rval->address.p[2] || rn->address.p[3] != rval->address.p[3]) {
		bpf_map_delete_elem(&hl_sk_rnat6, &rkey);
		return -ENOENT;
	}
	*addr = rval->address;
	*port = rval->port;
	return 0;
}

/* sock_fwd_verdict maps a forward translation result to the hook's return
 * value. Errors a caller should see (refused, unreachable) are reported
 * through bpf_set_retval so connect()/sendmsg() fail with that errno instead
 * of the default EPERM. */
static __always_inline int sock_fwd_verdict(int err)
{
	switch (err) {
	case -ECONNREFUSED:
	case -EHOSTUNREACH:
	case -ENOMEM:
		bpf_set_retval(err);
		return SYS_REJECT;
	default:
		return SYS_PROCEED;
	}
}

/* sock_skip_netns reports a socket the per-packet path serves instead
 * (--socket-lb-host-only: only the host's namespace uses socket LB). */
static __always_inline bool sock_skip_netns(__u64 netns)
{
	__u32 zero = 0;
	const struct host_config *cfg = bpf_map_lookup_elem(&hl_host_cfg, &zero);

	return cfg && cfg->sock_host_netns && cfg->sock_host_netns != netns;
}

static __always_inline bool sock_proto_supported(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP;
}
