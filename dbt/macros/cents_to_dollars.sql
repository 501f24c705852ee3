{#
    Money is stored in integer cents; models expose dollars with two decimals.
    Dividing by 100.0 (not 100) avoids integer division on warehouses that truncate it,
    and the cast to an exact two-decimal type rounds away any binary-float residue
    (DuckDB divides into a DOUBLE; Snowflake's NUMBER division is already exact).
    Dispatched so a warehouse without numeric(p, s) can override it (e.g. bigquery__).
#}
{% macro cents_to_dollars(column_name) -%}
    {{ return(adapter.dispatch('cents_to_dollars', 'jaffle_shop')(column_name)) }}
{%- endmacro %}

{% macro default__cents_to_dollars(column_name) -%}
    cast({{ column_name }} / 100.0 as numeric(16, 2))
{%- endmacro %}
