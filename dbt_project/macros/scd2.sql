{#-
    Join condition: the version `version` (a relation alias with valid_from, valid_to
    and version_number) was valid at the timestamp `at`. Versions are half-open
    [valid_from, valid_to). The first version also covers everything before it: rows
    that existed before change capture started (the initial snapshot) were valid
    before the snapshot read them.
-#}
{% macro scd2_valid_at(version, at) -%}
    ({{ version }}.valid_to is null or {{ at }} < {{ version }}.valid_to)
    and ({{ at }} >= {{ version }}.valid_from or {{ version }}.version_number = 1)
{%- endmacro %}
