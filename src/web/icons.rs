//! Icons as inline SVG, one per service, for the portal's tiles and the navigation bar (no
//! emoji: old laptops and phones often lack the fonts). Each draws in `currentColor` and is
//! hidden from screen readers: the label beside it says what it is. Never a picture that
//! carries meaning alone.

macro_rules! icon {
    ($name:ident, $body:literal) => {
        pub const $name: &str = concat!(
            r#"<svg viewBox="0 0 24 24" width="28" height="28" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">"#,
            $body,
            "</svg>"
        );
    };
}
icon!(
    PERSON,
    r#"<circle cx="12" cy="8" r="4"/><path d="M4 21c0-4 4-6 8-6s8 2 8 6"/>"#
);
icon!(
    CHILD,
    r#"<circle cx="12" cy="7" r="3"/><path d="M7 21v-5l-2-3h14l-2 3v5"/>"#
);
icon!(
    CLASS,
    r#"<rect x="3" y="4" width="18" height="12" rx="1"/><path d="M7 20l2-4M17 20l-2-4M7 8h6M7 11h9"/>"#
);
icon!(
    KEY,
    r#"<circle cx="8" cy="14" r="4"/><path d="M11 11l9-9"/><path d="M17 5l2 2"/>"#
);
icon!(
    SYSTEM,
    r#"<rect x="3" y="4" width="18" height="12" rx="1"/><path d="M8 20h8"/><path d="M12 16v4"/>"#
);
icon!(
    CALENDAR,
    r#"<rect x="3" y="5" width="18" height="16" rx="1"/><path d="M3 10h18"/><path d="M8 3v4"/><path d="M16 3v4"/>"#
);
icon!(
    CHECK,
    r#"<path d="M9 11l3 3 8-8"/><path d="M20 12v7a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h9"/>"#
);
icon!(
    BOOK,
    r#"<path d="M4 5a2 2 0 0 1 2-2h13v16H6a2 2 0 0 0-2 2z"/><path d="M4 19V5"/><path d="M8 7h7"/>"#
);
icon!(
    MAIL,
    r#"<rect x="3" y="5" width="18" height="14" rx="1"/><path d="M3 7l9 6 9-6"/>"#
);
icon!(FLAG, r#"<path d="M5 21V4"/><path d="M5 4h11l-2 4 2 4H5"/>"#);
icon!(
    UPLOAD,
    r#"<path d="M12 16V4"/><path d="M7 9l5-5 5 5"/><path d="M4 16v4h16v-4"/>"#
);
icon!(
    CLOCK,
    r#"<circle cx="12" cy="12" r="9"/><path d="M12 7v5l3 3"/>"#
);
icon!(
    BUILDING,
    r#"<path d="M4 21V5l8-3 8 3v16"/><path d="M9 21v-4h6v4"/><path d="M8 8h2M14 8h2M8 12h2M14 12h2"/>"#
);
icon!(
    LOCK,
    r#"<rect x="5" y="11" width="14" height="10" rx="1"/><path d="M8 11V7a4 4 0 0 1 8 0v4"/>"#
);

icon!(
    HOME,
    r#"<path d="M3 11l9-7 9 7"/><path d="M5 10v10h5v-6h4v6h5V10"/>"#
);
icon!(
    PENCIL,
    r#"<path d="M4 20h4L19 9l-4-4L4 16z"/><path d="M13 7l4 4"/>"#
);
icon!(
    CHART,
    r#"<path d="M4 20V11"/><path d="M10 20V4"/><path d="M16 20v-8"/><path d="M3 20h18"/>"#
);
icon!(
    LIST,
    r#"<path d="M10 6h10M10 12h10M10 18h10"/><path d="M3 6l1.5 1.5L7 5M3 12l1.5 1.5L7 11M3 18l1.5 1.5L7 17"/>"#
);
icon!(
    GRID,
    r#"<rect x="3" y="4" width="18" height="17" rx="1"/><path d="M3 9h18M9 9v12M15 9v12"/>"#
);
icon!(
    STAR,
    r#"<path d="M12 3l2.8 5.8 6.2.9-4.5 4.4 1.1 6.2L12 17.4l-5.6 2.9 1.1-6.2L3 9.7l6.2-.9z"/>"#
);
icon!(
    DISK,
    r#"<path d="M5 3h11l3 3v15H5z"/><path d="M8 3v5h8V3"/><rect x="8" y="13" width="8" height="6"/>"#
);
icon!(
    SYNC,
    r#"<path d="M20 12a8 8 0 0 1-14 5.3"/><path d="M4 12a8 8 0 0 1 14-5.3"/><path d="M18 3v4h-4"/><path d="M6 21v-4h4"/>"#
);
icon!(
    PEOPLE,
    r#"<circle cx="9" cy="8" r="3"/><path d="M3 20c0-3 3-5 6-5s6 2 6 5"/><circle cx="17" cy="9" r="2.5"/><path d="M16 14c3 0 5 2 5 5"/>"#
);
icon!(
    PRINTER,
    r#"<path d="M6 9V3h12v6"/><rect x="3" y="9" width="18" height="8" rx="1"/><path d="M6 14h12v7H6z"/>"#
);
