# Every executed notebook is also rendered to HTML for reading in a browser.


rule notebook_html:
    input:
        "{path}/notebooks/{name}.ipynb",
    output:
        "{path}/notebooks/{name}.html",
    params:
        py=PY,
    log:
        "{path}/logs/{name}.html.log",
    resources:
        **RESOURCES["default"],
    shell:
        "{params.py} -m nbconvert --to html --stdout {input} > {output} 2> {log}"
