//! nftables over netlink, without the `nft` binary or libnftnl.
//!
//! kelp programs one table of its own (the service proxy's and the pod
//! masquerade's rules) in transactions: [`Batch`] collects the messages,
//! [`Batch::commit`] hands them to the kernel in one `sendmsg`, and the
//! kernel applies all of them atomically or none. The encoding follows the
//! kernel's uapi (`linux/netfilter/nf_tables.h`) and is small: the proxy
//! needs a dozen expression types, listed in [`expr`].

pub mod attrs;
pub mod batch;
pub mod expr;

pub use batch::{BaseChain, Batch, Hook, NftError, SetSpec, is_missing};
pub use expr::{Expr, Verdict};
