//! Image reference parsing (`provgate::oci::ImageRef::parse`) and digest
//! parsing, with round trips: a parsed reference prints in a normalised
//! form that parses back to the same reference.
//!
//! Found by this target (fixed; `regressions/image_ref`): a first path
//! component with an upper-case letter (`Library/ngin`) was filed under
//! Docker Hub, while Docker and containerd take it as a registry host. Such
//! references are now refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provgate::digest::Digest;
use provgate::oci::ImageRef;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = ImageRef::parse(s) {
        let _ = (r.registry_host(), r.name(), r.tag(), r.digest());
        let upper_repository = r.repository().bytes().any(|b| b.is_ascii_uppercase());
        // Distribution's grammar: repository path components are lower case.
        assert!(
            !upper_repository,
            "{s:?} gives repository {:?}",
            r.repository()
        );
        let printed = r.to_string();
        match ImageRef::parse(&printed) {
            Ok(again) => assert_eq!(again, r, "{s:?} printed as {printed:?}"),
            Err(e) => panic!("{s:?} parses, but its normal form {printed:?} does not: {e}"),
        }
    }
    if let Ok(d) = s.parse::<Digest>() {
        assert_eq!(d.to_string(), s);
        let _ = d.tag_schema();
    }
});
