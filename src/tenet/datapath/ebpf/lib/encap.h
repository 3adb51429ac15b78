// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Sending a copy of the frame to one output: a local port, or the host's VXLAN
 * device in `external` mode with a tunnel key (remote endpoint, VNI) set on the
 * skb for the device to encapsulate with. Every output but the last is a clone;
 * the last one is a redirect of the frame itself.
 */
#ifndef TENET_ENCAP_H
#define TENET_ENCAP_H

#include "common.h"

static __always_inline int send(struct __sk_buff *skb, struct out *o, int last)
{
	if (o->remote) {
		struct bpf_tunnel_key tk = {};

		tk.remote_ipv4 = o->remote;
		tk.tunnel_id = o->key;
		tk.tunnel_ttl = 64;
		if (bpf_skb_set_tunnel_key(skb, &tk, sizeof(tk), BPF_F_ZERO_CSUM_TX) < 0) {
			count(C_ERRORS);
			return TC_ACT_SHOT;
		}
		count(C_TUNNEL_TX);
	} else {
		count(C_TX);
	}
	if (last)
		return bpf_redirect(o->ifindex, 0);
	if (bpf_clone_redirect(skb, o->ifindex, 0) < 0)
		count(C_ERRORS);
	return TC_ACT_SHOT;
}

/* A frame from the VXLAN device: its tunnel key and outer source address (host
 * order). 0, or -1 if the device gave none. */
static __always_inline int tunnel_key_of(struct __sk_buff *skb, __u32 *key, __u32 *src)
{
	struct bpf_tunnel_key tk = {};

	if (bpf_skb_get_tunnel_key(skb, &tk, sizeof(tk), 0) < 0)
		return -1;
	*key = tk.tunnel_id;
	*src = tk.remote_ipv4;
	return 0;
}

#endif /* TENET_ENCAP_H */
