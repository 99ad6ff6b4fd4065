// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/* Source-address check on the host side of a pod veth (TCX ingress: what
 * the pod sends). hivelet-cni loads one instance per pod with the pod's
 * addresses as constants and attaches it first in the chain, without a
 * link: it lives and dies with the veth. A pod can then send only from
 * its own addresses, never with another pod's or the node's; IPv6
 * link-local and unspecified sources (neighbour discovery, DAD) pass, and
 * frames that are not IP go on to whatever runs next. */

#include "lib/common.h"

#define ETH_HLEN	14
#define ETH_P_IP	0x0800
#define ETH_P_IPV6	0x86DD

/* Set by the loader; network byte order. Zero: the pod has no address
 * of that family, so every packet of it is dropped. */
volatile const __be32 pod_ip4;
volatile const __be32 pod_ip6[4];

static __always_inline bool ip6_allowed(const __be32 *s)
{
	/* fe80::/10 and :: are the pod's own on any link. */
	if ((s[0] & bpf_htonl(0xffc00000)) == bpf_htonl(0xfe800000))
		return true;
	if ((s[0] | s[1] | s[2] | s[3]) == 0)
		return true;
	if ((pod_ip6[0] | pod_ip6[1] | pod_ip6[2] | pod_ip6[3]) == 0)
		return false;
	return s[0] == pod_ip6[0] && s[1] == pod_ip6[1] && s[2] == pod_ip6[2] && s[3] == pod_ip6[3];
}

SEC("tcx/ingress")
int hl_pod_source(struct __sk_buff *skb)
{
	__be32 s6[4];
	__be32 s4;

	switch (bpf_ntohs(skb->protocol)) {
	case ETH_P_IP:
		/* iphdr.saddr */
		if (bpf_skb_load_bytes(skb, ETH_HLEN + 12, &s4, sizeof(s4)) < 0)
			return TCX_DROP;
		return pod_ip4 != 0 && s4 == pod_ip4 ? TCX_NEXT : TCX_DROP;
	case ETH_P_IPV6:
		/* ipv6hdr.saddr */
		if (bpf_skb_load_bytes(skb, ETH_HLEN + 8, s6, sizeof(s6)) < 0)
			return TCX_DROP;
		return ip6_allowed(s6) ? TCX_NEXT : TCX_DROP;
	}
	return TCX_NEXT;
}

char _license[] SEC("license") = "Dual BSD/GPL";
