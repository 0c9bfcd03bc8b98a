//! Device offload features over ethtool's generic-netlink interface (the
//! netlink half of `ethtool -K`), with no `ethtool` binary and no ioctl.
//!
//! Flannel turns TX checksum offload off on its VXLAN device: with it on,
//! some kernels and NICs hand out VXLAN packets whose inner checksum was
//! never filled in (the known kernel bug class behind flannel's
//! `tx-checksum-ip-generic off`). kelp does the same on `kelp.vxlan`.
//!
//! Two requests: resolve the `ethtool` generic-netlink family id through
//! `nlctrl`, then send `ETHTOOL_MSG_FEATURES_SET` with the feature named in
//! the wanted bitset (listed without a value: off).

use std::io;
use std::time::Duration;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};

use super::nftables::attrs::Attrs;
use super::nftables::batch::set_receive_timeout;

/// The nlctrl family id (GENL_ID_CTRL).
const GENL_ID_CTRL: u16 = 0x10;
/// CTRL_CMD_GETFAMILY.
const CTRL_CMD_GETFAMILY: u8 = 3;
/// CTRL_ATTR_FAMILY_ID / CTRL_ATTR_FAMILY_NAME.
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
/// ETHTOOL_MSG_FEATURES_SET and the family's version.
const ETHTOOL_MSG_FEATURES_SET: u8 = 12;
const ETHTOOL_GENL_VERSION: u8 = 1;
/// ETHTOOL_A_FEATURES_HEADER / ETHTOOL_A_FEATURES_WANTED.
const FEATURES_HEADER: u16 = 1;
const FEATURES_WANTED: u16 = 3;
/// ETHTOOL_A_HEADER_DEV_NAME.
const HEADER_DEV_NAME: u16 = 2;
/// ETHTOOL_A_BITSET_BITS, ETHTOOL_A_BITSET_BITS_BIT, ETHTOOL_A_BITSET_BIT_NAME.
const BITSET_BITS: u16 = 3;
const BITSET_BITS_BIT: u16 = 1;
const BITSET_BIT_NAME: u16 = 2;

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;

/// The feature flannel turns off on its VXLAN device.
pub const TX_CHECKSUM: &str = "tx-checksum-ip-generic";

/// Turns the named offload features off on `device`.
pub fn disable_features(device: &str, features: &[&str]) -> io::Result<()> {
    let mut socket = Socket::new(NETLINK_GENERIC)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    socket.set_rx_buf_sz(64 * 1024)?;
    set_receive_timeout(&socket, Duration::from_secs(2))?;
    let family = resolve_family(&mut socket, "ethtool")?;
    let mut attrs = Attrs::new();
    let header = attrs.nest(FEATURES_HEADER);
    attrs.string(HEADER_DEV_NAME, device);
    attrs.end(header);
    let wanted = attrs.nest(FEATURES_WANTED);
    let bits = attrs.nest(BITSET_BITS);
    for feature in features {
        let bit = attrs.nest(BITSET_BITS_BIT);
        attrs.string(BITSET_BIT_NAME, feature);
        attrs.end(bit);
    }
    attrs.end(bits);
    attrs.end(wanted);
    request(
        &mut socket,
        family,
        ETHTOOL_MSG_FEATURES_SET,
        ETHTOOL_GENL_VERSION,
        attrs,
        2,
    )?;
    Ok(())
}

/// The generic-netlink id of `name`.
fn resolve_family(socket: &mut Socket, name: &str) -> io::Result<u16> {
    let mut attrs = Attrs::new();
    attrs.string(CTRL_ATTR_FAMILY_NAME, name);
    let reply = request(socket, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, attrs, 1)?;
    // The reply: nlmsghdr (16), genlmsghdr (4), then attributes.
    let mut at = 20;
    while at + 4 <= reply.len() {
        let len = u16::from_ne_bytes([reply[at], reply[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([reply[at + 2], reply[at + 3]]) & 0x3fff;
        if len < 4 || at + len > reply.len() {
            break;
        }
        if kind == CTRL_ATTR_FAMILY_ID && len >= 6 {
            return Ok(u16::from_ne_bytes([reply[at + 4], reply[at + 5]]));
        }
        at += (len + 3) & !3;
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("the kernel has no {name} generic-netlink family"),
    ))
}

/// Sends one request and returns the first non-ack reply (empty when the
/// kernel only acknowledged); a negative ack is the error it carries.
fn request(
    socket: &mut Socket,
    family: u16,
    cmd: u8,
    version: u8,
    attrs: Attrs,
    seq: u32,
) -> io::Result<Vec<u8>> {
    let body = attrs.into_bytes();
    let len = 16 + 4 + body.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_ne_bytes());
    msg.extend_from_slice(&family.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&[cmd, version, 0, 0]);
    msg.extend_from_slice(&body);
    socket.send(&msg, 0)?;
    let mut data = Vec::new();
    loop {
        let mut buf = vec![0u8; 64 * 1024];
        let n = socket.recv(&mut &mut buf[..], 0)?;
        let mut at = 0;
        while at + 16 <= n {
            let mlen =
                u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
            let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
            if mlen < 16 || at + mlen > n {
                break;
            }
            if kind == NLMSG_ERROR {
                let code =
                    i32::from_ne_bytes([buf[at + 16], buf[at + 17], buf[at + 18], buf[at + 19]]);
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
                return Ok(data);
            }
            if data.is_empty() {
                data = buf[at..at + mlen].to_vec();
            }
            at += (mlen + 3) & !3;
        }
        if n == 0 {
            return Ok(data);
        }
    }
}
