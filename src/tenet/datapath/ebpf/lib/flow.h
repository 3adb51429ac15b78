// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Finding a frame's flow: the loose key first (no TCP flags, TTL 0: one flow for
 * every packet of a connection), kept only if the frame's TTL is above the flow's
 * floor (ttl_above), then the exact key.
 *
 * Invariant: the key is handed back as extract() filled it (the real TCP flags and
 * TTL), whatever was looked up: the rewrites, the flags seen and the upcall read it.
 * A flow's tcp_flags_seen is the OR of the flags of every frame it served, loose or
 * not (the agent reads a connection's FIN and RST there).
 */
#ifndef TENET_FLOW_H
#define TENET_FLOW_H

#include "common.h"

static __always_inline struct flow_val *lookup(struct flow_key *key)
{
	__u16 tcp_flags = key->tcp_flags;
	__u8 ttl = key->ip_ttl;
	struct flow_val *v;

	key->tcp_flags = LOOSE_FLAGS;
	key->ip_ttl = 0;
	v = bpf_map_lookup_elem(&flows, key);
	key->tcp_flags = tcp_flags;
	key->ip_ttl = ttl;
	if (v && v->ttl_above && ttl <= v->ttl_above)
		v = NULL; /* it runs out on the way: only an exact flow serves it, or the agent */
	if (!v)
		v = bpf_map_lookup_elem(&flows, key);
	return v;
}

/* Count and stamp a flow that serves a frame, and add the frame's TCP flags to the
 * flow's (written only when it brings a new one: a connection's SYN, FIN, RST). */
static __always_inline void touch(struct flow_val *v, struct __sk_buff *skb, __u16 tcp_flags)
{
	__u64 flags = tcp_flags;

	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, skb->len);
	v->last_used = bpf_ktime_get_ns();
	if (flags & ~v->tcp_flags_seen)
		__sync_fetch_and_or(&v->tcp_flags_seen, flags);
}

#endif /* TENET_FLOW_H */
