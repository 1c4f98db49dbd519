use super::*;

fn key(digest: &Digest, cosign: bool) -> SharedKey {
    SharedKey {
        registry: "registry.test".into(),
        repository: "team/app".into(),
        digest: digest.clone(),
        scope: "ab".repeat(32),
        cosign,
    }
}

fn bundle_piece(subject: &Digest, bytes: &'static [u8]) -> UnverifiedEvidence {
    UnverifiedEvidence {
        subject: subject.clone(),
        source: EvidenceSource {
            kind: SourceKind::Referrers,
            manifest: Some(Digest::sha256_of(b"referrer manifest")),
            layer: Some(Digest::sha256_of(bytes)),
        },
        content: EvidenceContent::Bundle(Bytes::from_static(bytes)),
    }
}

fn discovery(digest: &Digest) -> Discovery {
    Discovery {
        digest: digest.clone(),
        media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
        platforms: Vec::new(),
        evidence: vec![
            bundle_piece(digest, b"{\"bundle\":1}"),
            UnverifiedEvidence {
                subject: digest.clone(),
                source: EvidenceSource {
                    kind: SourceKind::CosignSig,
                    manifest: Some(Digest::sha256_of(b"sig manifest")),
                    layer: Some(Digest::sha256_of(b"payload")),
                },
                content: EvidenceContent::CosignSignature {
                    payload: Bytes::from_static(b"payload"),
                    annotations: BTreeMap::from([("k".into(), "v".into())]),
                },
            },
        ],
        notes: vec!["from the registry".into()],
        registry: "registry.test".into(),
        manifest: None,
    }
}

fn subject() -> Digest {
    Digest::sha256_of(b"image manifest")
}

#[test]
fn round_trip_keeps_every_piece() {
    let d = subject();
    let k = key(&d, true);
    let bytes = encode(&k, &discovery(&d), u64::MAX).unwrap();
    let back = decode(bytes.into(), &k, &Limits::default()).unwrap();
    assert_eq!(back.digest, d);
    assert_eq!(back.evidence.len(), 2);
    assert_eq!(back.evidence[1].source.kind, SourceKind::CosignSig);
    match &back.evidence[1].content {
        EvidenceContent::CosignSignature {
            payload,
            annotations,
        } => {
            assert_eq!(&payload[..], b"payload");
            assert_eq!(annotations.get("k").map(String::as_str), Some("v"));
        }
        other => panic!("{other:?}"),
    }
    assert!(back.notes.is_empty(), "notes are never read back");
}

#[test]
fn an_altered_blob_is_refused() {
    let d = subject();
    let k = key(&d, true);
    let mut bytes = encode(&k, &discovery(&d), u64::MAX).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1; // the last byte of the cosign payload
    let e = decode(bytes.into(), &k, &Limits::default()).unwrap_err();
    assert!(matches!(e, Refusal::Piece { index: 1, .. }), "{e}");
    assert!(e.to_string().contains("recorded layer digest"), "{e}");
}

#[test]
fn an_entry_swapped_between_digests_is_refused() {
    let d = subject();
    let other = Digest::sha256_of(b"another image");
    let bytes = encode(&key(&d, true), &discovery(&d), u64::MAX).unwrap();
    let e = decode(bytes.into(), &key(&other, true), &Limits::default()).unwrap_err();
    assert!(matches!(e, Refusal::Swapped { .. }), "{e}");
    // …and between scopes (credentials or registry settings).
    let bytes = encode(&key(&d, true), &discovery(&d), u64::MAX).unwrap();
    let mut k = key(&d, true);
    k.scope = "cd".repeat(32);
    assert!(matches!(
        decode(bytes.into(), &k, &Limits::default()),
        Err(Refusal::Swapped { .. })
    ));
}

#[test]
fn a_truncated_entry_is_refused() {
    let d = subject();
    let k = key(&d, true);
    let bytes = encode(&k, &discovery(&d), u64::MAX).unwrap();
    for cut in [0, 3, HEADER_LEN, HEADER_LEN + 10, bytes.len() - 1] {
        let e = decode(
            Bytes::copy_from_slice(&bytes[..cut]),
            &k,
            &Limits::default(),
        )
        .unwrap_err();
        assert!(
            matches!(e, Refusal::Truncated(_) | Refusal::Meta(_)),
            "cut at {cut}: {e}"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        decode(long.into(), &k, &Limits::default()).unwrap_err(),
        Refusal::Trailing(1)
    );
}

#[test]
fn an_unknown_version_or_magic_is_refused() {
    let d = subject();
    let k = key(&d, true);
    let mut bytes = encode(&k, &discovery(&d), u64::MAX).unwrap();
    bytes[4] = 2;
    assert_eq!(
        decode(bytes.clone().into(), &k, &Limits::default()).unwrap_err(),
        Refusal::Version { found: 2 }
    );
    bytes[0] = b'X';
    assert_eq!(
        decode(bytes.into(), &k, &Limits::default()).unwrap_err(),
        Refusal::Magic
    );
}

#[test]
fn oversized_pieces_follow_the_registry_limits() {
    let d = subject();
    let k = key(&d, true);
    let bytes = encode(&k, &discovery(&d), u64::MAX).unwrap();
    let limits = Limits {
        max_blob_bytes: 8,
        ..Limits::default()
    };
    let e = decode(bytes.clone().into(), &k, &limits).unwrap_err();
    assert!(
        e.to_string().contains("registries.limits.maxBlobBytes"),
        "{e}"
    );
    let limits = Limits {
        max_image_bytes: 12,
        ..Limits::default()
    };
    let e = decode(bytes.into(), &k, &limits).unwrap_err();
    assert!(
        e.to_string().contains("registries.limits.maxImageBytes"),
        "{e}"
    );
    assert!(
        encode(&k, &discovery(&d), 64).is_none(),
        "over maxEntryBytes"
    );
}

#[test]
fn cosign_evidence_never_enters_a_discovery_without_cosign_tags() {
    let d = subject();
    let bytes = encode(&key(&d, true), &discovery(&d), u64::MAX).unwrap();
    // Re-frame the same content under a cosign=false key.
    let mut meta: serde_json::Value =
        serde_json::from_slice(&bytes[HEADER_LEN..HEADER_LEN + meta_len(&bytes)]).unwrap();
    meta["cosign"] = false.into();
    let forged = reframe(&bytes, &meta);
    let e = decode(forged.into(), &key(&d, false), &Limits::default()).unwrap_err();
    assert!(matches!(e, Refusal::Piece { index: 1, .. }), "{e}");
}

#[test]
fn a_source_that_does_not_fit_its_content_is_refused() {
    // A cosign signature relabelled as a referrer (which a contract
    // with legacyCosign: false would count) is refused.
    let d = subject();
    let bytes = encode(&key(&d, true), &discovery(&d), u64::MAX).unwrap();
    let mut meta: serde_json::Value =
        serde_json::from_slice(&bytes[HEADER_LEN..HEADER_LEN + meta_len(&bytes)]).unwrap();
    meta["pieces"][1]["source"] = "referrers".into();
    let forged = reframe(&bytes, &meta);
    let e = decode(forged.into(), &key(&d, true), &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("cannot come from"), "{e}");
}

#[test]
fn a_piece_about_another_digest_is_refused() {
    let d = subject();
    let mut disco = discovery(&d);
    disco.evidence[0].subject = Digest::sha256_of(b"elsewhere");
    let bytes = encode(&key(&d, true), &disco, u64::MAX).unwrap();
    let e = decode(bytes.into(), &key(&d, true), &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("neither"), "{e}");
}

#[test]
fn platforms_come_from_the_manifest_bytes() {
    let child = Digest::sha256_of(b"child");
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{child}","size":1,"platform":{{"os":"linux","architecture":"arm64"}}}}]}}"#
    );
    let d = Digest::sha256_of(index.as_bytes());
    let mut disco = discovery(&d);
    disco.manifest = Some(Bytes::from(index.clone()));
    disco.media_type = Some("application/vnd.oci.image.index.v1+json".into());
    disco.evidence[0].subject = child.clone();
    let k = key(&d, true);
    let back = decode(
        encode(&k, &disco, u64::MAX).unwrap().into(),
        &k,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(back.platforms.len(), 1);
    assert_eq!(back.platforms[0].digest, child);
    // A manifest that is not the digest's is refused.
    disco.manifest = Some(Bytes::from(index.replace("arm64", "amd64")));
    let e = decode(
        encode(&k, &disco, u64::MAX).unwrap().into(),
        &k,
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Refusal::ManifestDigest { .. }), "{e}");
}

#[test]
fn mutated_entries_never_panic_and_never_decode_unchecked_bytes() {
    // A deterministic mutation loop (xorshift): flips, truncations,
    // insertions and length-field edits of a valid entry. Each either
    // decodes with every blob matching its layer digest, or is refused.
    let d = subject();
    let k = key(&d, true);
    let valid = encode(&k, &discovery(&d), u64::MAX).unwrap();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut v = valid.clone();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % v.len().max(1);
            match next() % 4 {
                0 => v[at] ^= 1 << (next() % 8),
                1 => v.truncate(at),
                2 => v.insert(at, next() as u8),
                _ => {
                    if v.len() >= HEADER_LEN {
                        v[5 + (next() as usize) % 4] = next() as u8;
                    }
                }
            }
            if v.is_empty() {
                break;
            }
        }
        if let Ok(back) = decode(v.into(), &k, &Limits::default()) {
            for e in &back.evidence {
                let bytes = match &e.content {
                    EvidenceContent::Bundle(b) => b,
                    EvidenceContent::CosignSignature { payload, .. } => payload,
                    EvidenceContent::CosignAttestation { envelope, .. } => envelope,
                };
                assert!(e.source.layer.as_ref().unwrap().matches(bytes));
                assert_eq!(e.subject, d);
            }
        }
    }
}

fn meta_len(bytes: &[u8]) -> usize {
    u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as usize
}

fn reframe(bytes: &[u8], meta: &serde_json::Value) -> Vec<u8> {
    let rest = &bytes[HEADER_LEN + meta_len(bytes)..];
    let meta = serde_json::to_vec(meta).unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(rest);
    out
}
