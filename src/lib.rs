//! vpcemu: an emulator of the AWS VPC data plane on DPDK.
//!
//! The root crate holds the DPDK layer ([`dpdk`], the only place where `unsafe_code` is allowed),
//! the runtime that runs pipelines on pinned lcores, and the command line.
#![deny(unsafe_code)]

pub mod cli;
pub mod demo;
pub mod dpdk;
pub mod lab;
pub mod runtime;
pub mod testkit;
