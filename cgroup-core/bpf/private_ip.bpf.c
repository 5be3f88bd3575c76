// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * pam_cgroup private IPs: cgroup sock_addr programs attached once at the tree root, so they
 * run for every process in every cgroup below it.
 *
 * A process is "confined" when its gid (bpf_get_current_uid_gid() >> 32) is >= min_gid. Its
 * private address is 127.0.0.0 | gid (gid 2001 -> 127.0.7.209). An address "belongs to
 * another user" when it is in 127.0.0.0/8, its low 24 bits are >= min_gid and are not the
 * caller's gid. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are judged as the IPv4 address.
 * "In range" means port_min <= port <= port_max. Rules, for confined processes only:
 *
 *   bind4     0.0.0.0 on a port in range            -> rewritten to the private address
 *             another user's address (any port)     -> EACCES
 *   bind6     [::] or [::ffff:0.0.0.0], port in range:
 *               dual-stack socket                   -> rewritten to [::ffff:<private>]
 *               IPV6_V6ONLY socket                  -> EACCES (v6 loopback is shared;
 *                                                      TCP and UDP, see v6only())
 *             [::1] on a port in range              -> EACCES (v6 loopback is shared)
 *             [::ffff:<another user's address>]     -> EACCES
 *   connect4/6, sendmsg4/6 to another user's address -> EACCES
 *
 * A gid too large for 24 bits has no private address: its wildcard binds in range are refused.
 * Processes with gid < min_gid (root, the reverse proxy) are never touched. Refusals return
 * EACCES through bpf_set_retval, as the kernel patch this replaces did (a plain refusal would
 * be EPERM). Anything else is allowed unchanged.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#define EACCES 13
#define LOOPBACK_NET 0x7f000000u /* 127.0.0.0, host order */
#define GID_MASK 0x00ffffffu

/* Set by the loader before the programs are loaded; read-only afterwards. */
const volatile __u32 min_gid = 2000;
const volatile __u16 port_min = 8000;
const volatile __u16 port_max = 8299;

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

static __always_inline __u32 caller_gid(void)
{
	return bpf_get_current_uid_gid() >> 32;
}

static __always_inline int port_in_range(__u32 user_port)
{
	__u16 port = bpf_ntohs((__u16)user_port);

	return port >= port_min && port <= port_max;
}

/* Is this IPv4 address (network order) another user's private address? */
static __always_inline int others_address(__u32 ip4, __u32 gid)
{
	__u32 host = bpf_ntohl(ip4);
	__u32 owner = host & GID_MASK;

	return (host & ~GID_MASK) == LOOPBACK_NET && owner >= min_gid && owner != gid;
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
	__u32 gid = caller_gid();
	__u32 ip4 = ctx->user_ip4;

	if (gid < min_gid)
		return 1;
	if (ip4 == 0 && port_in_range(ctx->user_port)) {
		if (gid > GID_MASK)
			return refuse();
		ctx->user_ip4 = bpf_htonl(LOOPBACK_NET | gid);
		return 1;
	}
	return others_address(ip4, gid) ? refuse() : 1;
}

SEC("cgroup/bind6")
int pcg_bind6(struct bpf_sock_addr *ctx)
{
	__u32 gid = caller_gid();
	__u32 ip6[4];
	int wildcard;

	if (gid < min_gid)
		return 1;
	load_ip6(ctx, ip6);
	if (is_v4_mapped(ip6) && ip6[3] != 0)
		return others_address(ip6[3], gid) ? refuse() : 1;
	if (!port_in_range(ctx->user_port))
		return 1;
	if (is_v6_loopback(ip6))
		return refuse();
	/* [::ffff:0.0.0.0] binds every IPv4 address, just like [::] on a dual-stack socket. */
	wildcard = is_v6_any(ip6) || is_v4_mapped(ip6);
	if (!wildcard)
		return 1;
	if (gid > GID_MASK || v6only(ctx) == 1)
		return refuse();
	ctx->user_ip6[0] = 0;
	ctx->user_ip6[1] = 0;
	ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
	ctx->user_ip6[3] = bpf_htonl(LOOPBACK_NET | gid);
	return 1;
}

static __always_inline int check_peer4(struct bpf_sock_addr *ctx)
{
	__u32 gid = caller_gid();

	if (gid < min_gid)
		return 1;
	return others_address(ctx->user_ip4, gid) ? refuse() : 1;
}

static __always_inline int check_peer6(struct bpf_sock_addr *ctx)
{
	__u32 gid = caller_gid();
	__u32 ip6[4];

	if (gid < min_gid)
		return 1;
	load_ip6(ctx, ip6);
	if (!is_v4_mapped(ip6))
		return 1;
	return others_address(ip6[3], gid) ? refuse() : 1;
}

SEC("cgroup/connect4")
int pcg_connect4(struct bpf_sock_addr *ctx)
{
	return check_peer4(ctx);
}

SEC("cgroup/connect6")
int pcg_connect6(struct bpf_sock_addr *ctx)
{
	return check_peer6(ctx);
}

SEC("cgroup/sendmsg4")
int pcg_sendmsg4(struct bpf_sock_addr *ctx)
{
	return check_peer4(ctx);
}

SEC("cgroup/sendmsg6")
int pcg_sendmsg6(struct bpf_sock_addr *ctx)
{
	return check_peer6(ctx);
}

/* GPL-compatible, like systemd's and Cilium's socket programs (dual-licensed source file). */
char LICENSE[] SEC("license") = "Dual MIT/GPL";
