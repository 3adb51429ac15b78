// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tenet's kernel fast path: a tc (clsact ingress, direct action) program
 * attached to every VM port of a host and to the host's VXLAN device in
 * `external` (collect metadata) mode.
 *
 *   frame in on a VM port P, or from the VXLAN device with key K
 *     K is STATE_VNI (flow state)?       -> to the upcall ring, never forwarded
 *     K mapped to a local port?          -> redirect there (egress host), done
 *     flow key = the simulation's FlowMatch, as struct flow_key   (lib/parse.h)
 *     flows[loose key] hit (TTL above its floor), else flows[key] hit
 *                                                                 (lib/flow.h)
 *                                        -> rewrites, outputs; count and stamp
 *                                           (lib/actions.h, lib/encap.h)
 *     miss, or nothing this program reads -> copy to the upcall ring, drop here
 *                                                                 (lib/upcall.h)
 *
 * A loose flow's key has no TCP flags and no TTL: one flow serves every packet of
 * a connection. The agent installs a flow loose unless its outcome read either;
 * a router's TTL check is kept as the flow's floor (ttl_above) and checked here.
 *
 * The structs and maps are in lib/common.h; tenet/datapath/kernel/layout.py
 * mirrors the structs and checks them against this program's BTF. Connection
 * tracking will go in lib/ct.h.
 *
 * Dual licensed (GPL-2.0-only OR BSD-2-Clause), so the kernel lets it call
 * GPL-only helpers; the rest of tenet is Apache-2.0.
 */
#include "lib/common.h"
#include "lib/parse.h"
#include "lib/flow.h"
#include "lib/ct.h"
#include "lib/actions.h"
#include "lib/encap.h"
#include "lib/upcall.h"

SEC("tc")
int tenet_ingress(struct __sk_buff *skb)
{
	struct flow_key key = {};
	struct parsed p = {};
	struct flow_val *v;
	struct config *cfg;
	__u32 zero = 0, i, n;
	int rc = TC_ACT_SHOT;

	count(C_RX);
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (cfg && cfg->vxlan_ifindex && skb->ifindex == cfg->vxlan_ifindex) {
		__u32 *port;

		count(C_TUNNEL_RX);
		if (tunnel_key_of(skb, &key.tunnel_key, &p.tunnel_src) < 0) {
			count(C_ERRORS);
			return TC_ACT_SHOT;
		}
		if (key.tunnel_key == STATE_VNI) /* another agent's flow state: for ours */
			return punt(skb, &key, &p, R_UNREAD);
		port = bpf_map_lookup_elem(&tunnel_ports, &key.tunnel_key);
		if (port) {
			count(C_HITS);
			count(C_TX);
			return bpf_redirect(*port, 0);
		}
	} else {
		key.in_port = skb->ifindex;
	}
	if (extract(skb, &key, &p) < 0)
		return punt(skb, &key, &p, R_UNREAD);
	v = lookup(&key);
	if (!v)
		return punt(skb, &key, &p, R_MISS);
	if (v->flags & F_USERSPACE)
		return punt(skb, &key, &p, R_USERSPACE);
	touch(v, skb, key.tcp_flags);
	count(C_HITS);
	n = v->n_out;
	if (n == 0)
		return TC_ACT_SHOT; /* a drop flow */
	if (rewrite(skb, &key, &p, v) < 0) {
		count(C_ERRORS);
		return TC_ACT_SHOT;
	}
	for (i = 0; i < MAX_OUT; i++) {
		if (i >= n)
			break;
		rc = send(skb, &v->outs[i], i + 1 == n);
	}
	return rc;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
