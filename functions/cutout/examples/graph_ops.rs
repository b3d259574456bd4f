//! Diagnostic: lists the optimised graph's operators by count (where tract spends its time).
use std::collections::BTreeMap;
use tract_onnx::prelude::*;
fn main() -> TractResult<()> {
    let path = std::env::args().nth(1).unwrap_or("../../models/u2netp.onnx".into());
    let mut model = tract_onnx::onnx().model_for_path(path)?;
    model.set_input_fact(0, f32::fact([1, 3, 320, 320]).into())?;
    let first = model.output_outlets()?[0];
    model.select_output_outlets(&[first])?;
    let typed = model.into_typed()?.into_decluttered()?;
    let mut counts = BTreeMap::new();
    for n in typed.nodes() {
        *counts.entry(n.op.name().to_string()).or_insert(0) += 1;
    }
    println!("decluttered: {counts:?}");
    for n in typed.nodes().iter().filter(|n| n.op.name().contains("Resize")).take(2) {
        println!(
            "{} {:?} inputs {:?}",
            n.name,
            n.op,
            n.inputs.iter().map(|i| format!("{:?}", typed.outlet_fact(*i).unwrap())).collect::<Vec<_>>()
        );
    }
    let opt = typed.into_optimized()?;
    let mut counts = BTreeMap::new();
    for n in opt.nodes() {
        *counts.entry(n.op.name().to_string()).or_insert(0) += 1;
    }
    println!("optimised: {counts:?}");
    Ok(())
}
