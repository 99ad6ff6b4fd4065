// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/* Per-packet service load balancing on the node's external devices (TCX
 * ingress and egress): NodePort, ExternalIPs and LoadBalancer IPs for
 * clients outside the node. Logic in lib/nodeport.h. */

#include "lib/nodeport.h"

SEC("tcx/ingress")
int hl_host_ingress(struct __sk_buff *skb)
{
	return host_ingress(skb);
}

SEC("tcx/egress")
int hl_host_egress(struct __sk_buff *skb)
{
	return host_egress(skb);
}

char _license[] SEC("license") = "Dual BSD/GPL";
