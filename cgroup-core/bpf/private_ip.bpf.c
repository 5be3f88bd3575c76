// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * pam_cgroup private IPs: cgroup sock_addr programs attached once at the tree root, so they
 * run for every process in every cgroup below it.
 *
 * Who is confined is decided by the fence, the cgroup users/<user> the calling process runs
 * under, never by a credential the process can change (its gid: sg, newgrp and setgid
 * programs change that). The kernel knows each process's cgroup ancestry:
 * bpf_get_current_ancestor_cgroup_id(level) gives the id of its ancestor at a depth, and the
 * depth of users/<user> is fixed (fence_level, the tree root's depth + 2, set at load). The
 * map pcg_fences, pinned next to the links and written only by root (cgroupctl init, and the
 * PAM module / cgroupctl whenever they create or re-apply users/<user>), holds:
 *   - the id of every users/<user>: kind FENCE, with that user's private address
 *     (127.0.0.0 | primary gid, network order) or 0 when the user has none (gid < min_gid);
 *   - the id of users/ itself: kind USERS.
 * A process is confined when its ancestor at fence_level is a FENCE, or (a fence not
 * registered yet, e.g. made while the map was being refilled) when its ancestor at
 * fence_level - 1 is USERS: then it is confined with no address, so everything that needs an
 * address is refused (fail closed). Every other process (root, the platform's reverse proxy,
 * unconfined/, the supervisor) is untouched. One helper call and one hash lookup per call for
 * a confined process; cgroup ids are never reused, so a stale entry cannot match a new cgroup.
 *
 * "In range" means port_min <= port <= port_max. "Another user's address" is an address in
 * 127.0.0.0/8 whose low 24 bits are >= min_gid and which is not the caller's own address.
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are judged as the IPv4 address. Rules, for
 * confined processes only (DESIGN.md, "Private IPs"):
 *
 *   bind4     0.0.0.0 or 127.0.0.1, port in range   -> rewritten to the own address
 *             other 127/8 (not own), port in range  -> EACCES
 *             another user's address (any port)     -> EACCES
 *   bind6     the same for ::ffff:a.b.c.d, and for a port in range:
 *               [::] or [::ffff:0.0.0.0], dual-stack -> rewritten to [::ffff:<own>]
 *               the same on an IPV6_V6ONLY socket   -> EACCES (v6 loopback is shared)
 *               [::1]                               -> EACCES (v6 loopback is shared)
 *   connect4/6, sendmsg4/6:
 *             127.0.0.1 (or ::ffff:127.0.0.1), port in range -> rewritten to the own address:
 *                                                    each customer's localhost is its own
 *             0.0.0.0, ::ffff:0.0.0.0 or ::, port in range -> the same: Linux sends a peer
 *                                                    "any" to the loopback (127.0.0.1, or
 *                                                    ::1 / 127.0.0.1 for ::), so left alone
 *                                                    it would reach the shared 127.0.0.1
 *             sendmsg6 to ::, port in range         -> EACCES (such a peer cannot be
 *                                                    rewritten to a v4-mapped one there)
 *             another user's address (any port)     -> EACCES
 *   sendmsg4/6 with a source (IP_PKTINFO / IPV6_PKTINFO) that is another user's -> EACCES
 *
 * Whatever needs the own address is refused when there is none. Refusals return EACCES
 * through bpf_set_retval, as the kernel patch this replaces did (a plain refusal would be
 * EPERM). Anything else is allowed unchanged.
 *
 * Kernel: bpf_get_current_ancestor_cgroup_id is offered to sock_addr programs since 5.7 and
 * bpf_set_retval since 5.18; Debian 12's 6.1 has both.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#define EACCES 13
#define LOOPBACK_NET 0x7f000000u /* 127.0.0.0, host order */
#define GID_MASK 0x00ffffffu
#define LOCALHOST 0x7f000001u /* 127.0.0.1, host order */

#include "fence.h"

/* Set by the loader before the programs are loaded; read-only afterwards. */
const volatile __u32 min_gid = 2000;
const volatile __u16 port_min = 8000;
const volatile __u16 port_max = 8299;
/* Depth of users/<user> in the cgroup2 hierarchy (its root cgroup is at 0). */
const volatile __u32 fence_level = 3;

/*
 * Just enough of the kernel's socket structs to read skc_ipv6only; CO-RE relocates each field
 * against the running kernel's BTF (only the names matter here, not the layout).
 * bpf_getsockopt cannot read IPV6_V6ONLY (at SOL_IPV6 it supports only IPV6_TCLASS and
 * IPV6_AUTOFLOWLABEL), so we reach the socket through bpf_skc_to_tcp6_sock and
 * bpf_skc_to_udp6_sock (kernel >= 5.9, so Debian 12's 6.1 works too).
 */
struct sock_common {
	unsigned char skc_ipv6only : 1;
} __attribute__((preserve_access_index));
struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));
struct inet_sock {
	struct sock sk;
} __attribute__((preserve_access_index));
struct inet_connection_sock {
	struct inet_sock icsk_inet;
} __attribute__((preserve_access_index));
struct tcp_sock {
	struct inet_connection_sock inet_conn;
} __attribute__((preserve_access_index));
struct tcp6_sock {
	struct tcp_sock tcp;
} __attribute__((preserve_access_index));
struct udp_sock {
	struct inet_sock inet;
} __attribute__((preserve_access_index));
struct udp6_sock {
	struct udp_sock udp;
} __attribute__((preserve_access_index));

static __always_inline int refuse(void)
{
	bpf_set_retval(-EACCES);
	return 0;
}

/*
 * Is the calling process confined? Sets *own to its private address (network order; 0: none).
 */
static __always_inline int confined(__u32 *own)
{
	struct fence *f;
	__u64 id;

	id = bpf_get_current_ancestor_cgroup_id(fence_level);
	f = id ? bpf_map_lookup_elem(&pcg_fences, &id) : 0;
	if (f && f->kind == KIND_FENCE) {
		*own = f->ip4;
		return 1;
	}
	id = bpf_get_current_ancestor_cgroup_id(fence_level - 1);
	f = id ? bpf_map_lookup_elem(&pcg_fences, &id) : 0;
	if (f && f->kind == KIND_USERS) {
		*own = 0;
		return 1;
	}
	return 0;
}

static __always_inline int port_in_range(__u32 user_port)
{
	__u16 port = bpf_ntohs((__u16)user_port);

	return port >= port_min && port <= port_max;
}

static __always_inline int is_loopback4(__u32 ip4)
{
	return (bpf_ntohl(ip4) & ~GID_MASK) == LOOPBACK_NET;
}

/* Is this IPv4 address (network order) another user's private address? */
static __always_inline int others_address(__u32 ip4, __u32 own)
{
	return is_loopback4(ip4) && (bpf_ntohl(ip4) & GID_MASK) >= min_gid && ip4 != own;
}

/* What to do with an IPv4 address (network order) of a bind, connect or sendmsg. */
enum verdict { ALLOW, REFUSE, REWRITE };

static __always_inline enum verdict judge_bind4(__u32 ip4, int in_range, __u32 own)
{
	if (in_range && (ip4 == 0 || ip4 == bpf_htonl(LOCALHOST)))
		return own ? REWRITE : REFUSE;
	if (is_loopback4(ip4) && ip4 != own && (in_range || others_address(ip4, own)))
		return REFUSE;
	return ALLOW;
}

static __always_inline enum verdict judge_peer4(__u32 ip4, int in_range, __u32 own)
{
	/* A peer of 0.0.0.0 is sent to 127.0.0.1 by the kernel: the same localhost. */
	if (in_range && (ip4 == 0 || ip4 == bpf_htonl(LOCALHOST)))
		return own ? REWRITE : REFUSE;
	return others_address(ip4, own) ? REFUSE : ALLOW;
}

static __always_inline int is_v4_mapped(const __u32 ip6[4])
{
	return ip6[0] == 0 && ip6[1] == 0 && ip6[2] == bpf_htonl(0x0000ffff);
}

static __always_inline int is_v6_any(const __u32 ip6[4])
{
	return ip6[0] == 0 && ip6[1] == 0 && ip6[2] == 0 && ip6[3] == 0;
}

static __always_inline int is_v6_loopback(const __u32 ip6[4])
{
	return ip6[0] == 0 && ip6[1] == 0 && ip6[2] == 0 && ip6[3] == bpf_htonl(1);
}

/*
 * 1: IPV6_V6ONLY is set; 0: it is not; -1: cannot tell (neither TCP nor UDP, e.g. MPTCP).
 * When unknown the caller still rewrites [::] to [::ffff:<private>]: a dual-stack socket then
 * binds only the private address, and the kernel refuses a v4-mapped address on a v6-only
 * socket itself (EINVAL instead of our EACCES): never the wildcard either way.
 */
static __always_inline int v6only(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *bsk = ctx->sk;
	struct tcp6_sock *tcp;
	struct udp6_sock *udp;

	if (!bsk)
		return -1;
	tcp = bpf_skc_to_tcp6_sock(bsk);
	if (tcp)
		return BPF_CORE_READ_BITFIELD(&tcp->tcp.inet_conn.icsk_inet.sk.__sk_common,
					      skc_ipv6only);
	udp = bpf_skc_to_udp6_sock(bsk);
	if (udp)
		return BPF_CORE_READ_BITFIELD(&udp->udp.inet.sk.__sk_common, skc_ipv6only);
	return -1;
}

static __always_inline void load_ip6(struct bpf_sock_addr *ctx, __u32 ip6[4])
{
	ip6[0] = ctx->user_ip6[0];
	ip6[1] = ctx->user_ip6[1];
	ip6[2] = ctx->user_ip6[2];
	ip6[3] = ctx->user_ip6[3];
}

SEC("cgroup/bind4")
int pcg_bind4(struct bpf_sock_addr *ctx)
{
	__u32 own;

	if (!confined(&own))
		return 1;
	switch (judge_bind4(ctx->user_ip4, port_in_range(ctx->user_port), own)) {
	case REFUSE:
		return refuse();
	case REWRITE:
		ctx->user_ip4 = own;
		return 1;
	default:
		return 1;
	}
}

static __always_inline void set_v4_mapped(struct bpf_sock_addr *ctx, __u32 ip4)
{
	ctx->user_ip6[0] = 0;
	ctx->user_ip6[1] = 0;
	ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
	ctx->user_ip6[3] = ip4;
}

SEC("cgroup/bind6")
int pcg_bind6(struct bpf_sock_addr *ctx)
{
	__u32 own;
	__u32 ip6[4];
	int in_range;

	if (!confined(&own))
		return 1;
	load_ip6(ctx, ip6);
	in_range = port_in_range(ctx->user_port);
	if (is_v4_mapped(ip6) && ip6[3] != 0) {
		switch (judge_bind4(ip6[3], in_range, own)) {
		case REFUSE:
			return refuse();
		case REWRITE:
			set_v4_mapped(ctx, own);
			return 1;
		default:
			return 1;
		}
	}
	if (!in_range)
		return 1;
	if (is_v6_loopback(ip6))
		return refuse();
	/* [::ffff:0.0.0.0] binds every IPv4 address, just like [::] on a dual-stack socket. */
	if (!is_v6_any(ip6) && !is_v4_mapped(ip6))
		return 1;
	if (!own || v6only(ctx) == 1)
		return refuse();
	set_v4_mapped(ctx, own);
	return 1;
}

/* connect4 and sendmsg4: the peer. */
static __always_inline int peer4(struct bpf_sock_addr *ctx, __u32 own)
{
	switch (judge_peer4(ctx->user_ip4, port_in_range(ctx->user_port), own)) {
	case REFUSE:
		return refuse();
	case REWRITE:
		ctx->user_ip4 = own;
		return 1;
	default:
		return 1;
	}
}

SEC("cgroup/connect4")
int pcg_connect4(struct bpf_sock_addr *ctx)
{
	__u32 own;

	if (!confined(&own))
		return 1;
	return peer4(ctx, own);
}

/*
 * connect6 and sendmsg6: only v4-mapped peers can be a user's address, and [::], which the
 * kernel turns into a loopback peer (127.0.0.1 when the socket is bound to a v4-mapped
 * address, else ::1): on the range it is the own localhost, like 127.0.0.1. A datagram's
 * peer cannot be rewritten to a v4-mapped address (the UDPv6 send path answers ENOTSUPP after
 * the hook), so there it is refused with the usual EACCES; connect() then send() works.
 */
static __always_inline int peer6(struct bpf_sock_addr *ctx, __u32 own, int datagram)
{
	__u32 ip6[4];

	load_ip6(ctx, ip6);
	if (is_v6_any(ip6) && port_in_range(ctx->user_port)) {
		if (!own || datagram)
			return refuse();
		set_v4_mapped(ctx, own);
		return 1;
	}
	if (!is_v4_mapped(ip6))
		return 1;
	switch (judge_peer4(ip6[3], port_in_range(ctx->user_port), own)) {
	case REFUSE:
		return refuse();
	case REWRITE:
		ctx->user_ip6[3] = own;
		return 1;
	default:
		return 1;
	}
}

SEC("cgroup/connect6")
int pcg_connect6(struct bpf_sock_addr *ctx)
{
	__u32 own;

	if (!confined(&own))
		return 1;
	return peer6(ctx, own, 0);
}

SEC("cgroup/sendmsg4")
int pcg_sendmsg4(struct bpf_sock_addr *ctx)
{
	__u32 own;

	if (!confined(&own))
		return 1;
	/* The source of IP_PKTINFO (0 when the message has none). */
	if (others_address(ctx->msg_src_ip4, own))
		return refuse();
	return peer4(ctx, own);
}

SEC("cgroup/sendmsg6")
int pcg_sendmsg6(struct bpf_sock_addr *ctx)
{
	__u32 own;
	__u32 src[4];

	if (!confined(&own))
		return 1;
	/* The source of IPV6_PKTINFO (all zero when the message has none). */
	src[0] = ctx->msg_src_ip6[0];
	src[1] = ctx->msg_src_ip6[1];
	src[2] = ctx->msg_src_ip6[2];
	src[3] = ctx->msg_src_ip6[3];
	if (is_v4_mapped(src) && others_address(src[3], own))
		return refuse();
	return peer6(ctx, own, 1);
}

/* GPL-compatible, like systemd's and Cilium's socket programs (dual-licensed source file). */
char LICENSE[] SEC("license") = "Dual MIT/GPL";
