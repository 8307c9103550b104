// Kekeli — optional enhancements only; every page works without this script.
document.addEventListener("submit", function (e) {
  var b = e.submitter || e.target.querySelector("button[type=submit]");
  if (b && b.classList.contains("danger") && !window.confirm(b.textContent + " ?")) e.preventDefault();
});
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".js-print").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () { window.print(); });
  });
  // Roll call: a running count of absent and late pupils beside the save button.
  var form = document.querySelector("form.rollcall");
  if (!form) return;
  var button = form.querySelector("button[type=submit]");
  var label = button.textContent;
  function count() {
    var a = form.querySelectorAll("input[value=absent]:checked").length;
    var r = form.querySelectorAll("input[value=retard]:checked").length;
    button.textContent = label + " " + (button.dataset.count || "").replace("{a}", a).replace("{r}", r);
  }
  form.addEventListener("change", count);
  count();
});
// Mark grid: Enter moves to the next pupil instead of submitting (Tab works as usual).
document.addEventListener("keydown", function (e) {
  var t = e.target;
  if (e.key !== "Enter" || !t.form || !t.form.classList.contains("marks") || t.tagName !== "INPUT") return;
  var inputs = Array.prototype.slice.call(t.form.querySelectorAll("input[name^=n_]"));
  var i = inputs.indexOf(t);
  if (i < 0) return;
  e.preventDefault();
  if (i + 1 < inputs.length) { inputs[i + 1].focus(); inputs[i + 1].select(); }
  else { t.form.querySelector("button[type=submit]").focus(); }
});
