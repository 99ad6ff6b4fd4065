// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/* Per-packet service translation on the host side of pod veths (TCX), for
 * pods socket LB does not serve (--socket-lb-host-only). Logic in
 * lib/podlb.h. */

#include "lib/podlb.h"

/* Ingress of the host-side veth: the pod sends. */
SEC("tcx/ingress")
int hl_pod_out(struct __sk_buff *skb)
{
	return pod_out(skb);
}

/* Egress of the host-side veth: the pod receives. */
SEC("tcx/egress")
int hl_pod_in(struct __sk_buff *skb)
{
	return pod_in(skb);
}

char _license[] SEC("license") = "Dual BSD/GPL";
