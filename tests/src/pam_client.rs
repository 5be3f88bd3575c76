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
    fn pam_close_session(pamh: *mut PamHandleRaw, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandleRaw, status: c_int) -> c_int;
    fn pam_strerror(pamh: *mut PamHandleRaw, errnum: c_int) -> *const c_char;
}

pub const PAM_SUCCESS: i32 = 0;
const PAM_CONV_ERR: c_int = 19;

/// Session modules do not converse: any prompt is refused.
extern "C" fn no_conversation(
    _n: c_int,
    _msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    _appdata: *mut c_void,
) -> c_int {
    if !resp.is_null() {
        // SAFETY: libpam passes a valid pointer to store the response array in.
        unsafe { *resp = ptr::null_mut() };
    }
    PAM_CONV_ERR
}

static CONV: PamConv = PamConv {
    conv: no_conversation,
    appdata_ptr: ptr::null_mut(),
};

// SAFETY: CONV is immutable and holds only a function pointer and a null pointer.
unsafe impl Sync for PamConv {}

/// One PAM transaction; pam_end is called on drop.
pub struct PamTransaction {
    handle: *mut PamHandleRaw,
    last: c_int,
}

impl PamTransaction {
    pub fn start(service: &str, user: &str, confdir: &Path) -> Result<Self, String> {
        let service = CString::new(service).map_err(|e| e.to_string())?;
        let user = CString::new(user).map_err(|e| e.to_string())?;
        let confdir =
            CString::new(confdir.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
        let mut handle = ptr::null_mut();
        // SAFETY: all pointers are valid NUL-terminated strings / a static conv struct.
        let rc = unsafe {
            pam_start_confdir(
                service.as_ptr(),
                user.as_ptr(),
                &CONV,
                confdir.as_ptr(),
                &mut handle,
            )
        };
        if rc != PAM_SUCCESS || handle.is_null() {
            return Err(format!("pam_start_confdir failed: {rc}"));
        }
        Ok(PamTransaction { handle, last: rc })
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
