//! The Geneve option walker over arbitrary bytes, and vpcemu's option reader: the walk
//! ends, covers exactly the bytes when it succeeds, and re-emits option by option.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::geneve::Options;

fuzz_target!(|data: &[u8]| {
    let mut covered = 0;
    let mut clean = true;
    let mut rebuilt = Vec::with_capacity(data.len());
    for (i, option) in Options::new(data).enumerate() {
        assert!(i <= data.len() / 4, "walk does not end");
        match option {
            Ok(o) => {
                covered += o.len();
                let mut buf = [0u8; 128];
                let n = o.emit(&mut buf).unwrap();
                rebuilt.extend_from_slice(&buf[..n]);
            }
            Err(_) => clean = false,
        }
    }
    if clean {
        assert_eq!(covered, data.len());
        // Only the reserved bits of the length bytes may differ.
        assert_eq!(rebuilt.len(), data.len());
    }
    let _ = wire::vpc::vpc_options(data);
});
