//! The REST routes, one module per resource.

pub mod callbacks;
pub mod cluster;
pub mod executions;
pub mod executors;
pub mod ops;
pub mod stats;
pub mod tasks;

use crate::error::{ApiError, ErrorCode};

/// Largest `page_size` of a listing.
pub const PAGE_SIZE_MAX: u64 = 500;
/// `page_size` when none is given.
pub const PAGE_SIZE_DEFAULT: u64 = 20;

/// Checks a listing's `page` (from 1) and `page_size` (1 to [`PAGE_SIZE_MAX`]), with defaults.
pub fn pagination(page: Option<u64>, page_size: Option<u64>) -> Result<(u64, u64), ApiError> {
    let page = page.unwrap_or(1);
    let page_size = page_size.unwrap_or(PAGE_SIZE_DEFAULT);
    if page == 0 {
        return Err(ApiError::new(ErrorCode::InvalidPage, "`page` counts from 1"));
    }
    if page_size == 0 || page_size > PAGE_SIZE_MAX {
        return Err(ApiError::new(ErrorCode::InvalidPageSize, format!("`page_size` must be 1 to {PAGE_SIZE_MAX}")));
    }
    Ok((page, page_size))
}
