//! A minimal libpam *client* (the side sshd plays). Hand-written because the client crates
//! (pam-client, pam) do not expose pam_start_confdir, which lets a test use a temporary PAM
//! configuration directory instead of /etc/pam.d.

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::Path;
use std::ptr;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

#[repr(C)]
struct PamConv {
    conv: extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int,
    appdata_ptr: *mut c_void,
}

#[repr(C)]
pub struct PamHandleRaw {
    _private: [u8; 0],
}

#[link(name = "pam")]
extern "C" {
    fn pam_start_confdir(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut PamHandleRaw,
    ) -> c_int;
    fn pam_open_session(pamh: *mut PamHandleRaw, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut PamHandleRaw, flags: c_int) -> c_int;
    fn pam_set_item(pamh: *mut PamHandleRaw, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_close_session(pamh: *mut PamHandleRaw, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandleRaw, status: c_int) -> c_int;
    fn pam_strerror(pamh: *mut PamHandleRaw, errnum: c_int) -> *const c_char;
}

pub const PAM_SUCCESS: i32 = 0;
pub const PAM_PERM_DENIED: i32 = 6;
const PAM_CONV_ERR: c_int = 19;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;
const PAM_TTY: c_int = 3;
const PAM_RHOST: c_int = 4;

/// Like sshd's non-interactive conversation: error and info messages are kept (for the test to
/// read, as sshd shows them to the client); any prompt is refused.
extern "C" fn capture_conversation(
    n: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if resp.is_null() || msg.is_null() || appdata.is_null() || n <= 0 {
        return PAM_CONV_ERR;
    }
    // SAFETY: appdata is the Box<Vec<String>> of the live PamTransaction (set in start).
    let kept = unsafe { &mut *appdata.cast::<Vec<String>>() };
    let count = n as usize;
    for i in 0..count {
        // SAFETY: Linux-PAM passes `msg` as an array of n pointers to messages.
        let m = unsafe { &**msg.add(i) };
        if m.msg_style != PAM_ERROR_MSG && m.msg_style != PAM_TEXT_INFO {
            // SAFETY: as below, a valid pointer to store the response array in.
            unsafe { *resp = ptr::null_mut() };
            return PAM_CONV_ERR;
        }
        if !m.msg.is_null() {
            // SAFETY: a NUL-terminated message from the module.
            let text = unsafe { std::ffi::CStr::from_ptr(m.msg) };
            kept.push(text.to_string_lossy().into_owned());
        }
    }
    // The caller frees the array with free(3): it must come from calloc.
    // SAFETY: calloc of count zeroed responses (null resp strings).
    let array = unsafe { libc::calloc(count, std::mem::size_of::<PamResponse>()) };
    if array.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: libpam passes a valid pointer to store the response array in.
    unsafe { *resp = array.cast() };
    PAM_SUCCESS
}

/// One PAM transaction; pam_end is called on drop.
pub struct PamTransaction {
    handle: *mut PamHandleRaw,
    last: c_int,
    /// What the modules said through the conversation. Boxed: libpam holds a pointer to the
    /// Vec itself, which must not move with the transaction.
    #[allow(clippy::box_collection)]
    messages: Box<Vec<String>>,
}

impl PamTransaction {
    pub fn start(service: &str, user: &str, confdir: &Path) -> Result<Self, String> {
        let service = CString::new(service).map_err(|e| e.to_string())?;
        let user = CString::new(user).map_err(|e| e.to_string())?;
        let confdir =
            CString::new(confdir.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
        let mut handle = ptr::null_mut();
        let mut messages: Box<Vec<String>> = Box::default();
        // libpam copies the struct; the appdata pointer stays valid as long as the Box.
        let conv = PamConv {
            conv: capture_conversation,
            appdata_ptr: (&mut *messages as *mut Vec<String>).cast(),
        };
        // SAFETY: all pointers are valid NUL-terminated strings / a conv struct.
        let rc = unsafe {
            pam_start_confdir(
                service.as_ptr(),
                user.as_ptr(),
                &conv,
                confdir.as_ptr(),
                &mut handle,
            )
        };
        if rc != PAM_SUCCESS || handle.is_null() {
            return Err(format!("pam_start_confdir failed: {rc}"));
        }
        Ok(PamTransaction {
            handle,
            last: rc,
            messages,
        })
    }

    /// Sets PAM_TTY and PAM_RHOST as sshd does before the account and session stacks.
    pub fn set_tty_rhost(&mut self, tty: Option<&str>, rhost: Option<&str>) -> Result<(), String> {
        for (kind, value) in [(PAM_TTY, tty), (PAM_RHOST, rhost)] {
            let Some(value) = value else { continue };
            let c = CString::new(value).map_err(|e| e.to_string())?;
            // SAFETY: handle is live; libpam copies the string.
            let rc = unsafe { pam_set_item(self.handle, kind, c.as_ptr().cast()) };
            if rc != PAM_SUCCESS {
                return Err(format!("pam_set_item({kind}): {rc}"));
            }
        }
        Ok(())
    }

    /// The account stack (pam_acct_mgmt), as sshd and cron run it before a session.
    pub fn acct_mgmt(&mut self) -> i32 {
        // SAFETY: handle is a live PAM handle.
        self.last = unsafe { pam_acct_mgmt(self.handle, 0) };
        self.last
    }

    /// Messages the modules sent through the conversation so far.
    pub fn messages(&self) -> Vec<String> {
        (*self.messages).clone()
    }

    pub fn open_session(&mut self) -> i32 {
        // SAFETY: handle is a live PAM handle.
        self.last = unsafe { pam_open_session(self.handle, 0) };
        self.last
    }

    pub fn close_session(&mut self) -> i32 {
        // SAFETY: handle is a live PAM handle.
        self.last = unsafe { pam_close_session(self.handle, 0) };
        self.last
    }

    pub fn strerror(&self, code: i32) -> String {
        // SAFETY: pam_strerror returns a static string for any code.
        let s = unsafe { pam_strerror(self.handle, code) };
        if s.is_null() {
            return code.to_string();
        }
        // SAFETY: non-null, NUL-terminated static string.
        unsafe { std::ffi::CStr::from_ptr(s) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for PamTransaction {
    fn drop(&mut self) {
        // SAFETY: handle is live and ended exactly once.
        unsafe { pam_end(self.handle, self.last) };
    }
}
