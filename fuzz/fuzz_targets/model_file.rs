//! Arbitrary text through the model-file loader (both versions: the post's
//! linear model and networks); what it accepts must run a forward pass and
//! survive a save and a load bit for bit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mnist_model::Model;
use ndarray::Array2;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(model) = Model::from_json_str(&text) else {
        return;
    };
    let (features, classes) = (model.features(), model.classes());
    assert!(features > 0 && classes > 0);

    let x = Array2::from_shape_fn((3, features), |(r, f)| match (r + f) % 3 {
        0 => 1.0f32,
        1 => -0.5,
        _ => 0.25,
    });
    let p = model
        .predict_proba(x.view())
        .expect("x has the model's features");
    assert_eq!(p.dim(), (3, classes));
    // Extreme finite weights can sum to +inf and -inf, whose NaN is allowed.
    assert!(p.iter().all(|&v| v.is_nan() || (0.0..=1.0).contains(&v)));
    let predicted = model.predict(x.view()).expect("x has the model's features");
    assert!(predicted.iter().all(|&c| c < classes));

    let saved = model.to_json_string().expect("loaded weights are finite");
    let back = Model::from_json_str(&saved).expect("a saved model loads");
    assert_eq!(back, model);
    assert_eq!(back.to_json_string().expect("finite"), saved);
});
