/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Service load-balancing tables and lookups.
 *
 * A service frontend (VIP, port, proto, scope) owns count+1 entries in the
 * services map: slot 0 describes the service, slots 1..count each name one
 * backend id. The agent writes backend slots before slot 0 when a service
 * grows and slot 0 before deleting slots when it shrinks, so a reader never
 * picks a slot that is missing.
 */
#pragma once

#include "maps.h"

static __always_inline const struct lb_service *
lb4_lookup_service(struct lb4_key *key)
{
	key->backend_slot = 0;
	return bpf_map_lookup_elem(&hl_lb4_svc, key);
}

static __always_inline const struct lb_service *
lb6_lookup_service(struct lb6_key *key)
{
	key->backend_slot = 0;
	return bpf_map_lookup_elem(&hl_lb6_svc, key);
}

/* Picks a random slot in 1..count. The caller has checked count > 0. */
static __always_inline __u16 lb_random_slot(const struct lb_service *svc)
{
	return (bpf_get_prandom_u32() % svc->count) + 1;
}

#define NSEC_PER_SEC	1000000000ULL

static __always_inline __u32 lb_now_sec(void)
{
	return bpf_ktime_get_coarse_ns() / NSEC_PER_SEC;
}

/* lb_affinity_backend returns the backend client last used for svc, or 0
 * when there is none, it expired, or the backend left the service. */
static __always_inline __u32
lb_affinity_backend(__u64 client, const struct lb_service *svc)
{
	struct lb_affinity_key key = { .client_id = client, .rev_nat_id = svc->rev_nat_index };
	struct lb_affinity_match_key match = {};
	const struct lb_affinity_val *val;

	val = bpf_map_lookup_elem(&hl_lb_aff, &key);
	if (!val || lb_now_sec() - val->last_used > svc->backend_id)
		return 0;
	match.backend_id = val->backend_id;
	match.rev_nat_id = svc->rev_nat_index;
	if (!bpf_map_lookup_elem(&hl_lb_affm, &match))
		return 0;
	return val->backend_id;
}

static __always_inline void
lb_affinity_update(__u64 client, const struct lb_service *svc, __u32 backend_id)
{
	struct lb_affinity_key key = { .client_id = client, .rev_nat_id = svc->rev_nat_index };
	struct lb_affinity_val val = { .backend_id = backend_id, .last_used = lb_now_sec() };

	bpf_map_update_elem(&hl_lb_aff, &key, &val, BPF_ANY);
}

static __always_inline const struct lb4_backend *
lb4_select_backend(struct lb4_key *key, const struct lb_service *svc, __u32 *backend_id)
{
	const struct lb_service *slot;

	key->backend_slot = lb_random_slot(svc);
	slot = bpf_map_lookup_elem(&hl_lb4_svc, key);
	if (!slot)
		return NULL;
	*backend_id = slot->backend_id;
	return lb4_backend(*backend_id);
}

static __always_inline const struct lb6_backend *
lb6_select_backend(struct lb6_key *key, const struct lb_service *svc, __u32 *backend_id)
{
	const struct lb_service *slot;

	key->backend_slot = lb_random_slot(svc);
	slot = bpf_map_lookup_elem(&hl_lb6_svc, key);
	if (!slot)
		return NULL;
	*backend_id = slot->backend_id;
	return lb6_backend(*backend_id);
}
