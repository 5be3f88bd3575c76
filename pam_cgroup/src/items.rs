//! What both hooks read of and say through libpam: the PAM items (service, tty, remote host)
//! and the application's conversation, which tells the person logging in why it is refused.

use std::ffi::CStr;

use pam::constants::PamResultCode;
use pam::items::Service;
use pam::module::PamHandle;

use crate::log::Logger;

/// A PAM string item as text (`None` when unset).
pub(crate) fn item_text<'a, T>(pamh: &'a PamHandle) -> Option<String>
where
    T: pam::items::Item<'a> + std::ops::Deref<Target = &'a CStr>,
{
    match pamh.get_item::<T>() {
        Ok(Some(item)) => Some(item.to_string_lossy().into_owned()),
        _ => None,
    }
}

/// Tells the person logging in why it is refused, through the application's conversation
/// (sshd sends it to the client before closing the connection). A failure is only logged.
pub(crate) fn tell(pamh: &PamHandle, message: &str, log: &mut Logger) {
    let sent = match pamh.get_item::<pam::conv::Conv>() {
        Ok(Some(conv)) => conv
            .send(pam::constants::PAM_ERROR_MSG, message)
            .map(|_| ()),
        Ok(None) => Err(PamResultCode::PAM_CONV_ERR),
        Err(code) => Err(code),
    };
    if let Err(code) = sent {
        log.debug(&format!(
            "the conversation did not take the message (PAM error {})",
            code as i32
        ));
    }
}

pub(crate) fn service_name(pamh: &PamHandle) -> String {
    match pamh.get_item::<Service>() {
        Ok(Some(s)) => s.0.to_string_lossy().into_owned(),
        _ => "unknown".to_string(),
    }
}
