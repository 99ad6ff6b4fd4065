// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/* Socket-level service load balancing on cgroup sock_addr hooks.
 * connect/sendmsg translate a service frontend to a backend; recvmsg and
 * getpeername translate the backend back to the frontend the socket used. */

#include "lib/sock_lb.h"

static __always_inline int sock4_fwd(struct bpf_sock_addr *ctx)
{
	__be32 addr = ctx->user_ip4;
	__be16 port = (__be16)ctx->user_port;
	__u8 proto = ctx->protocol;
	__u64 netns = bpf_get_netns_cookie(ctx);
	int err;

	if (!sock_proto_supported(proto) || sock_skip_netns(netns))
		return SYS_PROCEED;
	err = sock4_xlate_fwd(bpf_get_socket_cookie(ctx), netns, proto, &addr, &port);
	if (err == 0) {
		ctx->user_ip4 = addr;
		ctx->user_port = port;
	}
	return sock_fwd_verdict(err);
}

static __always_inline int sock4_rev(struct bpf_sock_addr *ctx)
{
	__be32 addr = ctx->user_ip4;
	__be16 port = (__be16)ctx->user_port;

	if (sock4_xlate_rev(bpf_get_socket_cookie(ctx), &addr, &port) == 0) {
		ctx->user_ip4 = addr;
		ctx->user_port = port;
	}
	return SYS_PROCEED;
}

static __always_inline void ctx_get_ip6(const struct bpf_sock_addr *ctx, union v6addr *a)
{
	a->p[0] = ctx->user_ip6[0];
	a->p[1] = ctx->user_ip6[1];
	a->p[2] = ctx->user_ip6[2];
	a->p[3] = ctx->user_ip6[3];
}

static __always_inline void ctx_set_ip6(struct bpf_sock_addr *ctx, const union v6addr *a)
{
	ctx->user_ip6[0] = a->p[0];
	ctx->user_ip6[1] = a->p[1];
	ctx->user_ip6[2] = a->p[2];
	ctx->user_ip6[3] = a->p[3];
}

/* IPv6 sockets reach IPv4 services through v4-mapped addresses
 * (::ffff:a.b.c.d); those use the IPv4 tables. */
static __always_inline int sock6_fwd(struct bpf_sock_addr *ctx)
{
	__be16 port = (__be16)ctx->user_port;
	__u8 proto = ctx->protocol;
	__u64 cookie, netns;
	union v6addr addr;
	int err;

	netns = bpf_get_netns_cookie(ctx);
	if (!sock_proto_supported(proto) || sock_skip_netns(netns))
		return SYS_PROCEED;
	cookie = bpf_get_socket_cookie(ctx);
	ctx_get_ip6(ctx, &addr);
	if (v6addr_is_v4mapped(addr.p)) {
		__be32 addr4 = addr.p[3];

		err = sock4_xlate_fwd(cookie, netns, proto, &addr4, &port);
		addr.p[3] = addr4;
	} else {
		err = sock6_xlate_fwd(cookie, netns, proto, &addr, &port);
	}
	if (err == 0) {
		ctx_set_ip6(ctx, &addr);
		ctx->user_port = port;
	}
	return sock_fwd_verdict(err);
}

static __always_inline int sock6_rev(struct bpf_sock_addr *ctx)
{
	__be16 port = (__be16)ctx->user_port;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	union v6addr addr;
	int err;

	ctx_get_ip6(ctx, &addr);
	if (v6addr_is_v4mapped(addr.p)) {
		__be32 addr4 = addr.p[3];

		err = sock4_xlate_rev(cookie, &addr4, &port);
		addr.p[3] = addr4;
	} else {
		err = sock6_xlate_rev(cookie, &addr, &port);
	}
	if (err == 0) {
		ctx_set_ip6(ctx, &addr);
		ctx->user_port = port;
	}
	return SYS_PROCEED;
}

SEC("cgroup/connect4")
int hl_sock4_connect(struct bpf_sock_addr *ctx)
{
	return sock4_fwd(ctx);
}

SEC("cgroup/sendmsg4")
int hl_sock4_sendmsg(struct bpf_sock_addr *ctx)
{
	return sock4_fwd(ctx);
}

SEC("cgroup/recvmsg4")
int hl_sock4_recvmsg(struct bpf_sock_addr *ctx)
{
	return sock4_rev(ctx);
}

SEC("cgroup/getpeername4")
int hl_sock4_getpeername(struct bpf_sock_addr *ctx)
{
	return sock4_rev(ctx);
}

SEC("cgroup/connect6")
int hl_sock6_connect(struct bpf_sock_addr *ctx)
{
	return sock6_fwd(ctx);
}

SEC("cgroup/sendmsg6")
int hl_sock6_sendmsg(struct bpf_sock_addr *ctx)
{
	return sock6_fwd(ctx);
}

SEC("cgroup/recvmsg6")
int hl_sock6_recvmsg(struct bpf_sock_addr *ctx)
{
	return sock6_rev(ctx);
}

SEC("cgroup/getpeername6")
int hl_sock6_getpeername(struct bpf_sock_addr *ctx)
{
	return sock6_rev(ctx);
}

char _license[] SEC("license") = "Dual BSD/GPL";
