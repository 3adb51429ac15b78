// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Reading a frame into its flow key, as tenet.packets.match.extract_match would:
 * untagged IPv4 with a 20-byte header and IPv6 without extension headers, and
 * their TCP, UDP, ICMP and ICMPv6 headers (an echo's identifier too). Anything
 * else (ARP, neighbor discovery, VLAN tags, IP options, IPv6 extension headers,
 * headers extract_match would refuse) makes extract() return -1: the agent reads it.
 *
 * Invariant: a key extract() fills is the one the agent's kernel_key() makes of
 * extract_match's FlowMatch of the same frame (the unit and integration tests
 * compare them).
 */
#ifndef TENET_PARSE_H
#define TENET_PARSE_H

#include "common.h"

/* What the program learned about a frame besides its key: where the transport header
 * starts, and for a frame from the VXLAN device the outer source address (host order). */
struct parsed {
	__u32 l4off;
	__u32 tunnel_src;
};

/* An ICMP echo request or reply (IPv4 8 and 0, ICMPv6 128 and 129). */
static __always_inline int is_echo(struct flow_key *key, __u8 type)
{
	if (key->eth_type == ETH_P_IP)
		return type == 8 || type == 0;
	return type == 128 || type == 129;
}

static __always_inline int transport(struct __sk_buff *skb, struct flow_key *key, __u32 l4off,
				     __u32 end)
{
	__u8 l4[14];

	if (key->ip_proto == IPPROTO_TCP) {
		if (l4off + 20 > end)
			return -1;
		if (bpf_skb_load_bytes(skb, l4off, l4, 14) < 0)
			return -1;
		if (l4[12] < 0x50 || l4off + ((l4[12] >> 4) << 2) > end)
			return -1;
		key->tcp_flags = l4[13] | ((l4[12] & 1) << 8);
	} else if (key->ip_proto == IPPROTO_UDP) {
		__u16 length;

		if (l4off + 8 > end)
			return -1;
		if (bpf_skb_load_bytes(skb, l4off, l4, 8) < 0)
			return -1;
		length = (l4[4] << 8) | l4[5];
		if (length < 8 || (l4off + length > end && key->ip_frag == FRAG_NONE))
			return -1;
	} else if ((key->ip_proto == IPPROTO_ICMP && key->eth_type == ETH_P_IP) ||
		   (key->ip_proto == IPPROTO_ICMPV6 && key->eth_type == ETH_P_IPV6)) {
		if (l4off + 8 > end)
			return -1;
		if (bpf_skb_load_bytes(skb, l4off, l4, 6) < 0)
			return -1;
		/* neighbor discovery: its match has fields this key does not hold */
		if (key->eth_type == ETH_P_IPV6 && (l4[0] == 135 || l4[0] == 136))
			return -1;
		key->l4_src = l4[0];
		key->l4_dst = l4[1];
		if (is_echo(key, l4[0])) /* its identifier tells one ping from another */
			key->icmp_id = (l4[4] << 8) | l4[5];
		return 0;
	} else {
		return 0;
	}
	key->l4_src = (l4[0] << 8) | l4[1];
	key->l4_dst = (l4[2] << 8) | l4[3];
	return 0;
}

static __always_inline int extract_ipv4(struct __sk_buff *skb, struct flow_key *key,
					struct parsed *p)
{
	struct iphdr ip;
	__u32 end;
	__u16 frag;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return -1;
	if (ip.version != 4 || ip.ihl != 5)
		return -1;
	end = ETH_HLEN + bpf_ntohs(ip.tot_len);
	if (bpf_ntohs(ip.tot_len) < sizeof(ip) || end > skb->len)
		return -1;
	__builtin_memcpy(key->ip_src, &ip.saddr, 4);
	__builtin_memcpy(key->ip_dst, &ip.daddr, 4);
	key->ip_proto = ip.protocol;
	key->ip_tos = ip.tos;
	key->ip_ttl = ip.ttl;
	p->l4off = ETH_HLEN + sizeof(ip);
	frag = bpf_ntohs(ip.frag_off);
	if (frag & 0x1fff) {
		key->ip_frag = FRAG_LATER;
		return 0;
	}
	key->ip_frag = (frag & 0x2000) ? FRAG_FIRST : FRAG_NONE;
	return transport(skb, key, p->l4off, end);
}

static __always_inline int extract_ipv6(struct __sk_buff *skb, struct flow_key *key,
					struct parsed *p)
{
	struct ipv6hdr ip;
	__u32 end, vtf;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return -1;
	__builtin_memcpy(&vtf, &ip, 4);
	vtf = bpf_ntohl(vtf);
	if (vtf >> 28 != 6)
		return -1;
	end = ETH_HLEN + sizeof(ip) + bpf_ntohs(ip.payload_len);
	if (end > skb->len)
		return -1;
	switch (ip.nexthdr) {
	case 0: case 43: case 44: case 51: case 60: /* extension headers: the agent reads them */
		return -1;
	}
	__builtin_memcpy(key->ip_src, &ip.saddr, 16);
	__builtin_memcpy(key->ip_dst, &ip.daddr, 16);
	key->ip_proto = ip.nexthdr;
	key->ip_tos = (vtf >> 20) & 0xff;
	key->ip_ttl = ip.hop_limit;
	key->ip_frag = FRAG_NONE;
	p->l4off = ETH_HLEN + sizeof(ip);
	return transport(skb, key, p->l4off, end);
}

/* Fill key from the frame as extract_match would; 0 on success, -1 when this
 * program does not read the frame (the agent will). */
static __always_inline int extract(struct __sk_buff *skb, struct flow_key *key, struct parsed *p)
{
	struct ethhdr eth;

	if (skb->vlan_present)
		return -1;
	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return -1;
	__builtin_memcpy(key->eth_src, eth.h_source, 6);
	__builtin_memcpy(key->eth_dst, eth.h_dest, 6);
	key->eth_type = bpf_ntohs(eth.h_proto);
	if (key->eth_type == ETH_P_IP)
		return extract_ipv4(skb, key, p);
	if (key->eth_type == ETH_P_IPV6)
		return extract_ipv6(skb, key, p);
	return -1;
}

#endif /* TENET_PARSE_H */
