// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Handing a frame to the agent: a struct upcall record (the frame's first
 * MAX_FRAME bytes, why, and for a tunnelled frame its tunnel key and outer source)
 * copied to the `upcalls` ring, in arrival order: flow-state frames (STATE_VNI)
 * and later misses share it; the frame itself is dropped here. Every hand-over is
 * counted (misses apart from frames not read here), and so is a full ring: a state
 * frame lost to it is counted in C_RING_FULL like any other.
 */
#ifndef TENET_UPCALL_H
#define TENET_UPCALL_H

#include "common.h"
#include "parse.h"

/* The frame to the agent, dropped here. */
static __always_inline int punt(struct __sk_buff *skb, struct flow_key *key, struct parsed *p,
				__u16 reason)
{
	__u32 zero = 0;
	struct upcall *u = bpf_map_lookup_elem(&scratch, &zero);
	__u32 n = skb->len;

	count(reason == R_MISS ? C_MISSES : C_PUNTED);
	if (!u)
		return TC_ACT_SHOT;
	if (n > MAX_FRAME) {
		count(C_OVERSIZE);
		n = MAX_FRAME;
	}
	if (n < 1)
		return TC_ACT_SHOT;
	u->in_port = key->in_port;
	u->tunnel_key = key->tunnel_key;
	u->len = skb->len;
	u->reason = reason;
	u->vlan_tci = skb->vlan_present ? (skb->vlan_tci & 0x0fff) | 0x1000 : 0;
	u->vlan_proto = skb->vlan_present ? bpf_ntohs(skb->vlan_proto) : 0;
	u->tunnel_src = p->tunnel_src; /* 0 unless from the VXLAN device */
	if (bpf_skb_load_bytes(skb, 0, u->data, n) < 0)
		return TC_ACT_SHOT;
	if (bpf_ringbuf_output(&upcalls, u, offsetof(struct upcall, data) + n, 0) < 0)
		count(C_RING_FULL);
	return TC_ACT_SHOT;
}

#endif /* TENET_UPCALL_H */
