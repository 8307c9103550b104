// Kekeli — optional enhancements only; every page works without this script.
document.addEventListener("submit", function (e) {
  var b = e.target.querySelector("button.danger");
  if (b && !window.confirm(b.textContent + " ?")) e.preventDefault();
});
