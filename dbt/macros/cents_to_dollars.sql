{# Money is stored in integer cents; models show dollars with two decimals, on any warehouse. #}
{% macro cents_to_dollars(column_name) -%}
    cast({{ column_name }} / 100.0 as {{ dbt.type_numeric() }})
{%- endmacro %}
