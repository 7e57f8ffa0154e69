//! Shared by the fuzz targets: a decode context from the fuzzer's first three octets.

use bgp::wire::{DecodeContext, FamilySet};

/// Splits `data` into a context (first three octets: flags, add-path families, extended
/// next hop families) and the rest.
pub fn context(data: &[u8]) -> Option<(DecodeContext, &[u8])> {
    let (&[flags, add_path, enh], rest) = data.split_first_chunk::<3>()?;
    Some((
        DecodeContext {
            four_octet_as: flags & 1 != 0,
            extended_message: flags & 2 != 0,
            add_path: FamilySet::from_bits(add_path),
            extended_next_hop: FamilySet::from_bits(enh),
            families: FamilySet::ALL,
        },
        rest,
    ))
}
