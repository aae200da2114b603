//! Item pictures for the screens: the bytes the daemon keeps (PNG, JPEG, WebP or SVG),
//! made into Slint images. Slint decodes a picture from a file, so the bytes pass through
//! a file of the kiosk's own in the temporary directory, removed once read.

use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// The picture, or None when the bytes are not one the screens can show.
pub fn decode(bytes: &[u8], content_type: &str) -> Option<slint::Image> {
    let ext = match content_type.split(';').next().unwrap_or("").trim() {
        "image/svg+xml" => "svg",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        _ => return None,
    };
    let dir = std::env::temp_dir().join(format!("edge-kiosk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("{}.{ext}", NEXT.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, bytes).ok()?;
    let img = slint::Image::load_from_path(&path);
    let _ = std::fs::remove_file(&path);
    let img = img.ok()?;
    (img.size().width > 0).then_some(img)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_svg_and_a_png_become_images_and_noise_does_not() {
        let svg = edge_sync::demo::demo_picture_svg("SKU-0000001").expect("a demo picture");
        let img = super::decode(svg.as_bytes(), "image/svg+xml").expect("svg");
        assert_eq!((img.size().width, img.size().height), (256, 256));
        assert!(super::decode(b"<html>nope</html>", "text/html").is_none());
        assert!(super::decode(b"not a png", "image/png").is_none());
    }
}
