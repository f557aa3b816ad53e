//! Run-time CPU feature dispatch: a hot loop written once as a function generic over
//! `const FMA: bool` is compiled twice, once for AVX2 + FMA (4-wide vectors, fused
//! multiply-adds) and once for the baseline target, and [`dispatch_fma!`] calls the variant the
//! CPU supports. The release build targets baseline x86-64, so without this LLVM vectorizes only
//! 2-wide (SSE2).

/// Whether this CPU has AVX2 and FMA (checked once, then cached by std).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Calls `$name::<true>(args)` compiled for AVX2 + FMA when the CPU has them, otherwise
/// `$name::<false>(args)` for the baseline target. `$name` should be `#[inline(always)]` so
/// that its body is compiled with the caller's target features.
macro_rules! dispatch_fma {
    ($name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn fused($($arg: $ty),*) -> $ret {
                $name::<true>($($arg),*)
            }
            if $crate::dispatch::has_avx2_fma() {
                // SAFETY: the CPU supports the features `fused` was compiled for.
                return unsafe { fused($($arg),*) };
            }
        }
        $name::<false>($($arg),*)
    }};
}
pub(crate) use dispatch_fma;
