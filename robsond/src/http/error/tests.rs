//! Unit tests of `http::error`: the mapping, and the JSON shape of every
//! error an App built like the daemon's gives.

use super::*;
use actix_web::test as web_test;
use actix_web::App;

#[test]
fn stream_keys_that_are_empty_hold_nul_or_exceed_200_characters_are_refused() {
    for bad in ["", "a\0b", "\0", &"k".repeat(201)] {
        let err = stream_key("key", bad).expect_err(bad);
        assert_eq!(err.status_code(), StatusCode::BAD_REQUEST, "{bad:?}");
    }
    // Control characters other than NUL pass: old keys may hold them.
    for good in [
        "line\nbreak",
        "tab\t",
        "\u{7f}",
        "order:1",
        "o'; DROP TABLE x;--",
        "../..",
        "ключ",
        &"é".repeat(200),
    ] {
        assert!(stream_key("key", good).is_ok(), "{good:?}");
    }
}

#[test]
fn resume_errors_map_to_404_and_409() {
    let unknown = ApiError::from(ResumeError::UnknownStream("s".into()));
    let not_parked = ApiError::from(ResumeError::NotParked("s".into()));
    assert_eq!(unknown.status_code(), StatusCode::NOT_FOUND);
    assert_eq!(not_parked.status_code(), StatusCode::CONFLICT);
}

#[test]
fn transient_database_errors_are_503_and_others_an_opaque_500() {
    let down = ApiError::from(sqlx::Error::PoolTimedOut);
    assert_eq!(down.status_code(), StatusCode::SERVICE_UNAVAILABLE);
    let broken = ApiError::from(sqlx::Error::Decode("bad column".into()));
    assert_eq!(broken.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(broken.to_string(), "internal error");
}

#[test]
fn echoed_keys_are_escaped_and_cut() {
    let err = ApiError::from(ResumeError::NotParked(format!("a\nb{}", "x".repeat(500))));
    let text = err.to_string();
    assert!(!text.contains('\n') && text.len() < 260, "{text}");
}

#[derive(Debug, serde::Deserialize)]
struct Limit {
    #[allow(dead_code)]
    limit: Option<i64>,
}

async fn page(_q: web::Query<Limit>) -> HttpResponse {
    HttpResponse::Ok().finish()
}

/// The status and the `error` of an answer.
async fn answer(res: ServiceResponse<impl MessageBody>) -> (u16, Option<String>) {
    let status = res.status().as_u16();
    let body = web_test::read_body(res).await;
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let error = json.and_then(|j| j["error"].as_str().map(str::to_owned));
    (status, error)
}

#[actix_web::test]
async fn unknown_paths_wrong_methods_and_bad_queries_answer_json() {
    // The daemon's error setup, a route with a query and a bodiless error.
    let app = web_test::init_service(
        App::new()
            .configure(configure)
            .wrap(json_errors())
            .route("/page", web::get().to(page))
            .route("/bare", web::get().to(HttpResponse::PayloadTooLarge)),
    )
    .await;
    let cases = [
        (
            web_test::TestRequest::get().uri("/nope"),
            404,
            "no such endpoint",
        ),
        (
            web_test::TestRequest::post().uri("/page"),
            405,
            "method not allowed",
        ),
        (
            web_test::TestRequest::get().uri("/page?limit=x"),
            400,
            "invalid query string",
        ),
        (
            web_test::TestRequest::get().uri("/bare"),
            413,
            "payload too large",
        ),
    ];
    for (req, status, error) in cases {
        let got = answer(web_test::call_service(&app, req.to_request()).await).await;
        assert_eq!(got.0, status, "{got:?}");
        assert!(
            got.1.as_deref().is_some_and(|e| e.contains(error)),
            "{got:?}"
        );
    }
    let req = web_test::TestRequest::get()
        .uri("/page?limit=5")
        .to_request();
    let ok = answer(web_test::call_service(&app, req).await).await;
    assert_eq!(ok, (200, None));
}

#[actix_web::test]
async fn unauthorized_names_the_bearer_scheme() {
    let res = ApiError::Unauthorized.error_response();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers().get(header::WWW_AUTHENTICATE);
    assert_eq!(challenge.and_then(|v| v.to_str().ok()), Some("Bearer"));
}
